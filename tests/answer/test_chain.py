"""The retrieval chain end to end on the embedded engines: a fake chat model (LangChain's,
for tests only) and the real extractive answerer."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from copilot.answer.chain import AnswerChain, Turn
from copilot.answer.citations import cited_numbers
from copilot.answer.extractive import NOT_FOUND_TEXT, ExtractiveAnswerer
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import People

HANDBOOK = """# Travel policy

Employees book flights through the travel portal. Economy class is the default for flights
under six hours. Hotel costs are reimbursed up to 180 euros per night in Europe.

# Equipment

Every engineer receives a laptop on the first day. Replacement laptops are ordered through
the IT helpdesk and arrive within five working days.
"""
HOTEL_QUESTION = "How much is the hotel reimbursement per night?"


@pytest.fixture
async def handbook(kb: KnowledgeBase, people: People, tmp_path: Path) -> str:
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    result = await ingest_file(
        kb, path, Ownership(uuid.UUID(people.admin.user_id), scope="company")
    )
    assert result.outcome == "indexed"
    return result.file_id


def test_cited_numbers() -> None:
    assert cited_numbers("A [2]. B [1, 3]. C [2] [9] [0].", 3) == [2, 1, 3]
    assert cited_numbers("no citations", 3) == []


async def test_extractive_answer_streams_and_cites(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    chain = AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    result = await chain.answer(
        "How much is the hotel reimbursement per night?", people.bob.scope, on_token=collect
    )
    assert "180 euros" in result.text
    assert "".join(tokens) == result.text and len(tokens) > 5
    assert result.cited and all(result.sources[n - 1]["cited"] for n in result.cited)
    cited = result.cited_sources
    assert cited and cited[0]["file_id"] == handbook and cited[0]["file_name"] == "handbook.md"
    assert f"[{result.cited[0]}]" in result.text
    assert result.model == "extractive" and result.latency_ms > 0


async def test_nothing_found_says_so(kb: KnowledgeBase, people: People) -> None:
    chain = AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    result = await chain.answer("What is the capital of France?", people.bob.scope)
    assert result.text == NOT_FOUND_TEXT and result.cited == [] and result.sources == []


async def test_follow_up_is_retrieved_with_the_previous_questions_topic(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    chain = AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    history = [
        Turn("user", "When do replacement laptops arrive?"),
        Turn("assistant", "Within five working days [1]."),
    ]
    result = await chain.answer("and who orders them?", people.bob.scope, history)
    assert result.standalone_question == "and who orders replacement laptops arrive?"
    assert "helpdesk" in result.text


async def test_model_answer_citations_map_to_the_sources(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("What is the hotel limit in Europe?"),
                AIMessage("Hotels are reimbursed up to 180 euros per night [1]. See also [7]."),
            ]
        )
    )
    chain = AnswerChain(
        kb.search, model=model, model_name="fake", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    history = [Turn("user", "Tell me about travel."), Turn("assistant", "Sure.")]
    result = await chain.answer("and the hotel?", people.bob.scope, history, on_token=collect)
    assert result.standalone_question == "What is the hotel limit in Europe?"
    assert "".join(tokens) == result.text and len(tokens) > 3
    assert result.cited == [1]  # [7] does not exist: never shown as a citation
    assert [s["number"] for s in result.cited_sources] == [1]
    assert all(not s["cited"] for s in result.sources[1:])


async def test_model_errors_propagate(kb: KnowledgeBase, people: People, handbook: str) -> None:
    class Broken(GenericFakeChatModel):
        async def _astream(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            raise ConnectionError("model endpoint unreachable")
            yield  # pragma: no cover

    chain = AnswerChain(
        kb.search,
        model=Broken(messages=iter([])),
        model_name="broken",
        extractive=ExtractiveAnswerer(kb.embeddings),
    )
    with pytest.raises(ConnectionError, match="unreachable"):
        await chain.answer("hotel limit?", people.bob.scope)


async def test_a_new_topic_is_not_mixed_with_the_previous_one(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    chain = AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )
    history = [
        Turn("user", "How much is the hotel reimbursement per night?"),
        Turn("assistant", "180 euros [1]."),
    ]
    result = await chain.answer(
        "When do replacement laptops arrive for engineers?", people.bob.scope, history
    )
    assert result.standalone_question == "When do replacement laptops arrive for engineers?"
    assert "five working days" in result.text and "180 euros" not in result.text


async def test_extractive_answer_is_streamed_part_by_part_at_a_reading_pace(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    pace = 40.0  # words per second
    chain = AnswerChain(
        kb.search,
        model=None,
        model_name="extractive",
        extractive=ExtractiveAnswerer(kb.embeddings),
        reveal_words_per_second=pace,
    )
    events: list[tuple[float, str, Any]] = []

    async def collect(token: str) -> None:
        events.append((time.monotonic(), "token", token))

    async def announce(source: dict[str, Any]) -> None:
        events.append((time.monotonic(), "source", source))

    start = time.monotonic()
    result = await chain.answer(
        "Describe the travel policy: flights and hotel costs.",
        people.bob.scope,
        on_token=collect,
        on_source=announce,
    )
    end = time.monotonic()
    tokens = [(at, token) for at, kind, token in events if kind == "token"]
    assert "".join(token for _, token in tokens) == result.text and len(tokens) > 10
    # The first words are out while the rest is still being written, at about the pace.
    words = len(result.text.split())
    assert tokens[0][0] - start < end - start - 0.8 * (words - 1) / pace
    assert tokens[-1][0] - tokens[0][0] >= 0.9 * (words - 1) / pace
    # Each cited source is announced once, as stored, right after the text first citing it.
    announced = [source for _, kind, source in events if kind == "source"]
    assert announced == result.cited_sources and announced
    for index, (_, kind, source) in enumerate(events):
        if kind == "source":
            shown = "".join(token for _, k, token in events[:index] if k == "token")
            assert source["number"] in cited_numbers(shown, len(result.sources))


async def test_a_models_tokens_are_passed_on_as_they_come_and_a_question_picks_its_model(
    kb: KnowledgeBase, people: People, handbook: str
) -> None:
    written = "Hotels are reimbursed up to 180 euros per night [1]."
    model = GenericFakeChatModel(messages=iter([AIMessage(written)]))
    chain = AnswerChain(
        kb.search,
        model=None,
        model_name="extractive",
        extractive=ExtractiveAnswerer(kb.embeddings),
        alternatives={"openai:fake": model},
        reveal_words_per_second=1.0,  # a second a word: only text that exists in full
    )
    assert chain.model_names == ["extractive", "openai:fake"]
    tokens: list[str] = []

    async def collect(token: str) -> None:
        tokens.append(token)

    started = time.monotonic()
    result = await chain.answer(
        HOTEL_QUESTION, people.bob.scope, on_token=collect, model="openai:fake"
    )
    assert time.monotonic() - started < 3  # not paced: 10 words would take 10 s
    assert result.model == "openai:fake" and result.text == written
    assert "".join(tokens) == written and len(tokens) > 5

    chain.reveal_words_per_second = 0
    default = await chain.answer(HOTEL_QUESTION, people.bob.scope, model="no-such-model")
    assert default.model == "extractive" and "180 euros" in default.text
