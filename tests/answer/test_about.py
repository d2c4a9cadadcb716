"""Questions about the assistant are answered from what the asker can read and do, not by
quoting documents that share their words; every other question goes to the knowledge."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from copilot.answer.about import Topic, files_by_scope, topic_of, welcome_lines
from copilot.answer.chain import AnswerChain
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import Settings
from copilot.web.chat import STARTERS
from tests.conftest import People


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("What can you do?", Topic.CAPABILITIES),
        ("what can you do", Topic.CAPABILITIES),
        ("Who are you?", Topic.CAPABILITIES),
        ("Help", Topic.CAPABILITIES),
        ("How do I add my own files to your knowledge?", Topic.UPLOADS),
        ("How can I upload a document?", Topic.UPLOADS),
        ("What can you do about a late payment?", None),
        ("How do I add a printer?", None),
        ("How do I file a travel expense?", None),
        ("What are you allowed to expense when travelling?", None),
        ("What does the help desk do on weekends?", None),
    ],
)
def test_only_questions_about_the_assistant_are_recognised(
    question: str, topic: Topic | None
) -> None:
    assert topic_of(question) is topic


def test_the_starters_that_ask_about_the_assistant_are_recognised() -> None:
    topics = [topic_of(message) for _, message in STARTERS]
    assert topics == [Topic.CAPABILITIES, None, Topic.UPLOADS]


async def _chain(kb: KnowledgeBase) -> AnswerChain:
    return AnswerChain.from_settings(
        Settings(), kb.search, kb.embeddings, sessions=kb.sessions, locate=kb.locations
    )


async def _add(kb: KnowledgeBase, tmp_path: Path, name: str, owner: str, **access: str) -> None:
    path = tmp_path / name
    path.write_text(f"# {name}\n\nResearch notes on coronavirus spike proteins and what you do.\n")
    ownership = Ownership(uuid.UUID(owner), **access)  # type: ignore[arg-type]
    assert (await ingest_file(kb, path, ownership)).outcome == "indexed"


async def test_what_can_you_do_names_only_what_the_asker_can_read(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    await _add(kb, tmp_path, "company-notes.md", people.admin.user_id, scope="company")
    await _add(kb, tmp_path, "carols-private.md", people.carol.user_id)
    await _add(kb, tmp_path, "bobs-own.md", people.bob.user_id)
    chain = await _chain(kb)

    result = await chain.answer("What can you do?", people.bob.scope)

    assert result.sources == [] and result.cited == []
    assert "quoting the passages" in result.text  # the extractive default
    assert "You can search 2 documents" in result.text
    assert "company-notes.md" in result.text and "bobs-own.md" in result.text
    assert "carols-private.md" not in result.text
    assert "One of them is your own upload" in result.text
    assert "spike proteins" not in result.text  # no quoting of documents


async def test_upload_question_depends_on_the_askers_permission(
    kb: KnowledgeBase, people: People
) -> None:
    chain = await _chain(kb)
    question = "How do I add my own files to your knowledge?"

    allowed = await chain.answer(question, people.bob.scope, permissions=people.bob.permissions)
    refused = await chain.answer(question, people.bob.scope, permissions=frozenset({"chat.use"}))

    assert "paperclip" in allowed.text and "only you" in allowed.text
    assert "up to 50 MB" in allowed.text and "Word (.docx)" in allowed.text
    assert "documents.upload" in refused.text and "paperclip" not in refused.text


async def test_an_empty_library_says_how_to_fill_it(kb: KnowledgeBase, people: People) -> None:
    result = await (await _chain(kb)).answer("What can you do?", people.bob.scope)
    assert "no documents you can read yet" in result.text


async def test_other_questions_still_search_the_knowledge(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    await _add(kb, tmp_path, "company-notes.md", people.admin.user_id, scope="company")
    result = await (await _chain(kb)).answer(
        "What do the research notes say about spike proteins?", people.bob.scope
    )
    assert result.cited and result.sources[0]["file_name"] == "company-notes.md"


async def test_the_welcome_counts_what_the_user_may_read_per_scope(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    await _add(kb, tmp_path, "company-notes.md", people.admin.user_id, scope="company")
    await _add(kb, tmp_path, "carols-private.md", people.carol.user_id)
    await _add(kb, tmp_path, "bobs-own.md", people.bob.user_id)

    counts = await files_by_scope(kb.sessions, people.bob.scope)

    assert counts == {"company": 1, "personal": 1}  # not Carol's
    assert welcome_lines(counts, generated=False) == [
        "Ask a question: Copilot quotes the passages of the documents you may read and cites "
        "each source.",
        "It knows 2 documents: 1 company-wide, 1 of your own.",
    ]
    assert "no documents yet" in welcome_lines({}, generated=True)[1]
    assert "writes answers from" in welcome_lines({}, generated=True)[0]
