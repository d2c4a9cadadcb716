"""The opt-in local provider (COPILOT_LLM_PROVIDER=local): a GGUF file run by llama.cpp.

Its wiring and its errors are tested without a model. One real generation runs when
COPILOT_TEST_LOCAL_MODEL names a GGUF file and llama-cpp-python is installed (the
local-llm extra); it is skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import pytest

from copilot.answer.chain import AnswerChain
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.answer.providers import ModelNotConfigured, create_chat_model, model_name
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import Settings
from tests.conftest import People


@pytest.fixture
def gguf_header_only(tmp_path: Path) -> Path:
    """A file that starts like a GGUF file (the checks before loading pass on it)."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_the_environment_selects_the_local_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COPILOT_LLM_PROVIDER", "local")
    monkeypatch.setenv("COPILOT_LLM_MODEL_PATH", str(tmp_path / "models" / "qwen.gguf"))
    monkeypatch.setenv("COPILOT_LLM_THREADS", "2")
    settings = Settings()
    assert (settings.llm_provider, settings.llm_threads) == ("local", 2)
    assert settings.llm_context_tokens == 4096 and settings.llm_max_tokens == 384
    assert model_name(settings) == "local:qwen.gguf"
    with pytest.raises(ModelNotConfigured, match=r"no file at .*models/qwen\.gguf"):
        create_chat_model(settings)


def test_the_model_path_is_required() -> None:
    with pytest.raises(ModelNotConfigured, match="COPILOT_LLM_MODEL_PATH"):
        create_chat_model(Settings(llm_provider="local"))


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ModelNotConfigured, match="is not a GGUF file"):
        create_chat_model(Settings(llm_provider="local", llm_model_path=str(path)))


#: Both halves of the local-llm extra: llama.cpp's binding and LangChain's wrapper of it.
LOCAL_LLM_INSTALLED = all(
    importlib.util.find_spec(module) for module in ("llama_cpp", "langchain_community")
)


@pytest.mark.parametrize("missing", ["llama_cpp", "langchain_community"])
def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, gguf_header_only: Path, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if it were not installed
    settings = Settings(llm_provider="local", llm_model_path=str(gguf_header_only))
    with pytest.raises(ModelNotConfigured, match=r"pip install -e '\.\[local-llm\]'"):
        create_chat_model(settings)


@pytest.mark.skipif(not LOCAL_LLM_INSTALLED, reason="the local-llm extra is not installed")
def test_a_file_llama_cpp_cannot_load_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, gguf_header_only: Path
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    settings = Settings(llm_provider="local", llm_model_path=str(gguf_header_only))
    with pytest.raises(ModelNotConfigured, match="COPILOT_LLM_MODEL_PATH"):
        create_chat_model(settings)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # no spinning threads on shared cores


def test_the_extra_pins_llama_cpp_python_and_brings_langchains_wrapper() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert extras["local-llm"] == ["llama-cpp-python==0.3.36", "langchain-community>=0.4.2,<0.5"]


# --- one real generation ------------------------------------------------------------------

LOCAL_MODEL = os.environ.get("COPILOT_TEST_LOCAL_MODEL", "")


@pytest.mark.skipif(
    not LOCAL_MODEL or not LOCAL_LLM_INSTALLED,
    reason="set COPILOT_TEST_LOCAL_MODEL to a GGUF file and install the local-llm extra",
)
async def test_a_real_local_model_answers_from_the_source_and_streams(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = tmp_path / "travel.md"
    path.write_text(
        "# Travel policy\n\nHotel costs are reimbursed up to 180 euros per night in Europe.\n"
    )
    ingested = await ingest_file(
        kb, path, Ownership(uuid.UUID(people.admin.user_id), scope="company")
    )
    assert ingested.outcome == "indexed"
    settings = Settings(
        data_dir=tmp_path / "data",
        llm_provider="local",
        llm_model_path=LOCAL_MODEL,
        llm_temperature=0.0,
        llm_max_tokens=60,
    )
    chain = AnswerChain(
        kb.search,
        model=create_chat_model(settings),
        model_name=model_name(settings),
        extractive=ExtractiveAnswerer(kb.embeddings),
    )
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    result = await chain.answer(
        "Up to how much are hotel costs reimbursed per night in Europe?",
        people.bob.scope,
        on_token=collect,
    )
    assert "180" in result.text
    assert len(tokens) > 1 and "".join(tokens) == result.text
    assert result.model == f"local:{Path(LOCAL_MODEL).name}"
