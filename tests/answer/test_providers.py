"""Chat models from settings: the configured one, and the alternatives a picker offers."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from copilot.answer.chain import AnswerChain
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.answer.providers import create_chat_model, model_choices, model_name
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import ModelChoice, Settings

OPENAI = ModelChoice(
    provider="openai", model="gpt-test", base_url="http://127.0.0.1:9/v1", api_key="k"
)


def test_one_model_is_the_configured_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert [model_name(choice) for choice in model_choices(settings)] == ["extractive"]


def test_alternatives_come_from_the_environment_as_json_after_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "COPILOT_LLM_ALTERNATIVES",
        '[{"provider": "openai", "model": "gpt-test", "base_url": "http://127.0.0.1:9/v1",'
        ' "api_key": "k"}, {"provider": "extractive"}]',  # the default again: offered once
    )
    settings = Settings(data_dir=tmp_path)
    choices = model_choices(settings)
    assert [model_name(choice) for choice in choices] == ["extractive", "openai:gpt-test"]
    model = create_chat_model(choices[1])
    assert isinstance(model, ChatOpenAI) and model.model_name == "gpt-test"
    assert choices[1].llm_temperature == settings.llm_temperature  # the general knobs


def test_a_typo_in_an_alternative_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base_ur"):
        Settings(data_dir=tmp_path, llm_alternatives=[{"provider": "openai", "base_ur": "x"}])


def test_the_chain_offers_every_choice_the_default_first(kb: KnowledgeBase) -> None:
    settings = kb.settings.model_copy(update={"llm_alternatives": [OPENAI]})
    chain = AnswerChain.from_settings(settings, kb.search, kb.embeddings)
    assert chain.model_names == ["extractive", "openai:gpt-test"]
    assert chain.model is None and isinstance(chain.models["openai:gpt-test"], ChatOpenAI)
    assert chain.reveal_words_per_second == settings.answer_reveal_words_per_second > 0
    alone = AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    assert alone.model_names == ["extractive"]
