"""Chat model providers behind one factory chosen by settings.

None means the embedded default: no chat model, extractive answers (see `extractive.py`).
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from copilot.settings import Settings


class ModelNotConfigured(ValueError):
    """A provider was chosen without the settings it needs; the message names them."""


def create_chat_model(settings: Settings) -> BaseChatModel | None:
    provider = settings.llm_provider
    if provider == "extractive":
        return None
    if provider == "llamacpp":
        return _llamacpp(settings)
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


def _llamacpp(settings: Settings) -> BaseChatModel:
    if not settings.llm_model_path:
        raise ModelNotConfigured("COPILOT_LLM_MODEL_PATH (a .gguf file) is required for llamacpp")
    try:
        from langchain_community.chat_models import ChatLlamaCpp
    except ImportError as error:  # pragma: no cover - depends on the optional extra
        raise ModelNotConfigured(
            "install the llamacpp extra: pip install -e '.[llamacpp]'"
        ) from error
    return ChatLlamaCpp(
        model_path=settings.llm_model_path,
        temperature=settings.llm_temperature,
        n_ctx=4096,
        max_tokens=512,
        streaming=True,
        verbose=False,
    )


def model_name(settings: Settings) -> str:
    if settings.llm_provider == "extractive":
        return "extractive"
    if settings.llm_provider == "llamacpp":
        return f"llamacpp:{settings.llm_model_path.rsplit('/', 1)[-1]}"
    return f"{settings.llm_provider}:{settings.llm_model}"
