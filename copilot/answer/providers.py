"""Chat model providers behind one factory chosen by settings.

None means the embedded default: no chat model, extractive answers (see `extractive.py`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from copilot.settings import Settings


class ModelNotConfigured(ValueError):
    """A provider was chosen without the settings it needs; the message names them."""


def create_chat_model(settings: Settings) -> BaseChatModel | None:
    provider = settings.llm_provider
    if provider == "extractive":
        return None
    if provider == "local":
        return _local(settings)
    if not settings.llm_model:
        raise ModelNotConfigured(f"COPILOT_LLM_MODEL is required for the {provider} provider")
    if provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(
            model=settings.llm_model,
            base_url=settings.llm_base_url or "http://127.0.0.1:11434",
            temperature=settings.llm_temperature,
        )
    from langchain_openai import ChatOpenAI

    if not settings.llm_base_url:
        raise ModelNotConfigured("COPILOT_LLM_BASE_URL is required for the openai provider")
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key or "unused",  # type: ignore[arg-type]
        temperature=settings.llm_temperature,
        streaming=True,
        stream_usage=True,
        max_retries=1,
        timeout=120,
    )


def _local(settings: Settings) -> BaseChatModel:
    """A GGUF model run in this process by llama.cpp, through LangChain's ChatLlamaCpp."""
    if not settings.llm_model_path:
        raise ModelNotConfigured(
            "COPILOT_LLM_MODEL_PATH (a .gguf file) is required for the local provider"
        )
    path = Path(settings.llm_model_path).expanduser()
    if not path.is_file():
        raise ModelNotConfigured(f"COPILOT_LLM_MODEL_PATH: no file at {path}")
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ModelNotConfigured(f"COPILOT_LLM_MODEL_PATH: {path} is not a GGUF file")
    if any(importlib.util.find_spec(m) is None for m in ("llama_cpp", "langchain_community")):
        raise ModelNotConfigured(
            "the local provider needs llama-cpp-python and langchain-community: "
            "pip install -e '.[local-llm]' (it compiles llama.cpp from source, which takes "
            "minutes)"
        )
    # llama.cpp's OpenMP threads spin while they wait: on cores shared with other work
    # that cost 20x (measured: a first token in 21 s instead of 1 s, 0.2 tokens/s). Read
    # once, when llama.cpp is first loaded; an operator's own value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from langchain_community.chat_models import ChatLlamaCpp

    try:
        return ChatLlamaCpp(
            model_path=str(path),
            n_ctx=settings.llm_context_tokens,
            max_tokens=settings.llm_max_tokens,
            n_threads=settings.llm_threads or os.cpu_count(),
            n_batch=512,  # ChatLlamaCpp's default of 8 reads a 2,000-token prompt 8 at a time
            temperature=settings.llm_temperature,
            repeat_penalty=1.0,  # quoting the sources repeats them, by design
            # 0: the file's own RoPE settings (ChatLlamaCpp's 10,000 would override them).
            rope_freq_base=0.0,
            rope_freq_scale=0.0,
            seed=0,
            streaming=True,
            verbose=False,
        )
    except ValueError as error:  # llama.cpp could not load the file
        raise ModelNotConfigured(f"COPILOT_LLM_MODEL_PATH: {error}") from error


def model_choices(settings: Settings) -> list[Settings]:
    """The settings of each chat model users may pick, the configured one first; models
    offered twice are offered once."""
    choices = {model_name(settings): settings}
    for choice in settings.llm_alternatives:
        alternative = settings.model_copy(
            update={
                "llm_provider": choice.provider,
                "llm_model": choice.model,
                "llm_base_url": choice.base_url,
                "llm_api_key": choice.api_key,
                "llm_model_path": choice.model_path,
                "llm_alternatives": [],
            }
        )
        choices.setdefault(model_name(alternative), alternative)
    return list(choices.values())


def model_name(settings: Settings) -> str:
    if settings.llm_provider == "extractive":
        return "extractive"
    if settings.llm_provider == "local":
        return f"local:{Path(settings.llm_model_path).name}"
    return f"{settings.llm_provider}:{settings.llm_model}"
