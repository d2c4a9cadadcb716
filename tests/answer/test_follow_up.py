"""Follow-ups without a chat model, on a real embedded knowledge base: the follow-up is
searched with the earlier question's topic, and the answer says which earlier question it
was taken to mean only when two were as plausible."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from copilot.answer.chain import AnswerChain, Turn
from copilot.answer.extractive import NOT_FOUND_TEXT, WEAK_EVIDENCE_TEXT, ExtractiveAnswerer
from copilot.answer.follow_up import resolve_history, topic_of
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import People

METHODS = {
    "bert.md": """# BERT

BERT is pre-trained on BooksCorpus and English Wikipedia with a masked language model
objective, for one million steps with batches of 256 sequences of 512 tokens. Pre-training
uses the Adam optimizer with a learning rate of 0.0001 and a warm-up over the first 10,000
steps. Fifteen percent of the input tokens are chosen for masking during pre-training. A
second pre-training task predicts whether one sentence follows another. Pre-training the
large model took four days on sixteen Cloud TPUs.

# Limitations

The weaknesses of BERT are the quadratic cost of attention on long documents and the
mismatch between the masked tokens seen in pre-training and the real tokens seen in
fine-tuning.
""",
    "squad.md": """# SQuAD

SQuAD holds 100,000 questions written by crowdworkers on 536 Wikipedia articles.

# Criticism

The weaknesses of SQuAD are that every answer is a span of the paragraph and that the
crowdworkers wrote their questions while looking at the paragraph.
""",
    "travel.md": """# Travel policy

Hotel costs are reimbursed up to 180 euros per night in Europe.
""",
    "retriever.md": """# Dense passage retriever

The dense passage retriever is trained on pairs of a question and the passage that answers
it. Training uses in-batch negatives: the other passages of a batch of 128 questions serve
as negatives for each question. The dense passage retriever also sees one BM25 hard
negative per question during training, which raised its top-20 accuracy by four points.
""",
    "equipment.md": """# Equipment

Every engineer receives a laptop on the first day. Replacement laptops are ordered through
the IT helpdesk and arrive within five working days.
""",
}


@pytest.fixture
async def chain(kb: KnowledgeBase, people: People, tmp_path: Path) -> AnswerChain:
    for name, text in METHODS.items():
        path = tmp_path / name
        path.write_text(text)
        result = await ingest_file(
            kb, path, Ownership(uuid.UUID(people.admin.user_id), scope="company")
        )
        assert result.outcome == "indexed"
    return AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )


def _asked(*questions: str) -> list[Turn]:
    return [turn for q in questions for turn in (Turn("user", q), Turn("assistant", "..."))]


def test_the_topic_is_the_name_not_the_aspect() -> None:
    assert topic_of("How is BERT pre-trained?") == "BERT"
    assert topic_of("What is the incubation period of COVID-19?") == "COVID-19"
    assert topic_of("What is the price of Juicy Apples?") == "Juicy Apples"
    assert topic_of("When do replacement laptops arrive?") == "replacement laptops arrive"
    # What the question asks of its subject ("how ... is trained", "in detail") is the
    # aspect, not the topic a later "its" points back to.
    assert (
        topic_of("Explain in detail how the dense passage retriever is trained.")
        == "dense passage retriever"
    )
    assert topic_of("Describe how expense reports are approved.") == "expense reports"


def test_earlier_follow_ups_carry_their_topic_on() -> None:
    first, second, third = resolve_history(
        ["How is BERT pre-trained?", "And what are its weaknesses?", "And in Asia?"]
    )
    assert second.question == "And what are BERT's weaknesses?" and second.topic == "BERT"
    # Elliptic (no pronoun): the earlier question's aspect is kept, as it is asked again.
    assert third.question == "And what are BERT's weaknesses?\nAnd in Asia?"


async def test_a_follow_up_retrieves_its_topic_not_the_earlier_aspect(
    chain: AnswerChain, people: People
) -> None:
    result = await chain.answer(
        "And what are its weaknesses?", people.bob.scope, _asked("How is BERT pre-trained?")
    )
    assert "quadratic cost of attention" in result.sources[0]["snippet"]
    assert "quadratic cost of attention" in result.text
    assert "one million steps" not in result.text  # the earlier question's aspect
    assert result.standalone_question == "And what are BERT's weaknesses?"
    assert "SQuAD" not in result.text
    assert not result.text.startswith("Taking")  # one earlier topic: nothing to say
    assert result.cited_sources[0]["file_name"] == "bert.md"


async def test_a_follow_up_is_answered_only_with_what_it_asks_of_the_topic(
    chain: AnswerChain, people: People
) -> None:
    # The knowledge says how the retriever is trained, not what its weaknesses are; BERT's
    # and SQuAD's weaknesses are in it, but they are not the retriever's.
    result = await chain.answer(
        "And what are its weaknesses?",
        people.bob.scope,
        _asked("Explain in detail how the dense passage retriever is trained."),
    )
    assert result.standalone_question == "And what are dense passage retriever's weaknesses?"
    assert result.text.startswith(WEAK_EVIDENCE_TEXT) or result.text == NOT_FOUND_TEXT
    assert "quadratic cost" not in result.text and "span of the paragraph" not in result.text


async def test_two_plausible_referents_are_named_in_the_answer(
    chain: AnswerChain, people: People
) -> None:
    history = _asked("How is BERT pre-trained?", "How many questions does SQuAD hold?")
    result = await chain.answer("What are its weaknesses?", people.bob.scope, history)
    # Both documents name weaknesses: the latest question is taken, and the answer says so.
    assert result.text.startswith(
        "Taking 'its' to mean SQuAD (from “How many questions does SQuAD hold?”): "
    )
    assert "every answer is a span" in result.text
    assert result.cited_sources[0]["file_name"] == "squad.md"


async def test_retrieval_settles_which_earlier_question_is_meant(
    chain: AnswerChain, people: People
) -> None:
    history = _asked(
        "When do replacement laptops arrive?", "How much is the hotel reimbursement per night?"
    )
    result = await chain.answer("Who orders them?", people.bob.scope, history)
    # Only the laptops' passages say who orders: not the latest question, and no notice.
    assert "laptops" in result.standalone_question
    assert "IT helpdesk" in result.text and not result.text.startswith("Taking")


async def test_a_question_that_stands_alone_ignores_the_conversation(
    chain: AnswerChain, people: People
) -> None:
    result = await chain.answer(
        "How much are hotel costs reimbursed per night in Europe?",
        people.bob.scope,
        _asked("How is BERT pre-trained?", "How many questions does SQuAD hold?"),
    )
    assert result.standalone_question == "How much are hotel costs reimbursed per night in Europe?"
    assert "180 euros" in result.text and not result.text.startswith("Taking")
