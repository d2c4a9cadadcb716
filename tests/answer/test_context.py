"""Neighbouring chunks for the answer, read from the database: joined without the repeated
overlap, only on the hit's page, and only from files the asker may read (checked on the
file's row). Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from sqlalchemy import select

from copilot.answer.chain import AnswerChain
from copilot.answer.context import NeighbourContext
from copilot.db.models import Chunk, File
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.base import Hit
from copilot.search.ensemble import hit_to_document
from copilot.settings import Settings
from copilot.users import Principal
from tests.conftest import FIXTURES, People, open_kb

needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")

# Sixty short sentences in one paragraph: several 128-token chunks of one page-less file,
# each repeating the last sentences of the one before (the chunker's 16-token overlap).
LONG_TEXT = " ".join(f"Receipt {n} stays {n + 3} years in room {n % 4}." for n in range(1, 61))


@pytest.fixture
async def kb(database_settings: Settings, embeddings: LocalMiniLM) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base on each database (the `people` fixture uses this one too)."""
    async with open_kb(database_settings, embeddings) as knowledge:
        yield knowledge


def _squashed(text: str) -> str:
    return " ".join(text.split())


async def _ingest(kb: KnowledgeBase, path: Path, ownership: Ownership) -> uuid.UUID:
    result = await ingest_file(kb, path, ownership)
    assert result.outcome == "indexed", result.error
    return uuid.UUID(result.file_id)


async def _chunks(kb: KnowledgeBase, file_id: uuid.UUID) -> list[Chunk]:
    async with kb.sessions() as session:
        rows = await session.scalars(
            select(Chunk).where(Chunk.file_id == file_id).order_by(Chunk.ordinal)
        )
        return list(rows)


def _as_hit(chunk: Chunk, file_name: str) -> Document:
    """A chunk as the search engines hand it to the answer."""
    hit = Hit(
        str(chunk.id), 1.0, str(chunk.file_id), file_name, chunk.page, chunk.ordinal, chunk.text
    )
    return hit_to_document(hit, "keyword", 1)


def _company(principal: Principal) -> Ownership:
    return Ownership(uuid.UUID(principal.user_id), scope="company")


async def test_the_sentences_either_side_join_without_the_overlap(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = tmp_path / "expenses.txt"
    path.write_text(LONG_TEXT)
    file_id = await _ingest(kb, path, _company(people.admin))
    chunks = await _chunks(kb, file_id)
    assert len(chunks) >= 4
    documents, _ = await kb.search.search("Receipt 21 stays years", people.bob.scope)
    hit = documents[0]
    ordinal = hit.metadata["ordinal"]
    assert 0 < ordinal < len(chunks) - 1 and "Receipt 21 " in hit.page_content
    numbers = [int(n) for n in re.findall(r"Receipt (\d+) ", hit.page_content)]
    first, last = numbers[0], numbers[-1]

    others = [d for d in documents[1:] if abs(d.metadata["ordinal"] - ordinal) > 1]
    expanded = await NeighbourContext(kb.sessions, hits=1).expand([hit, *others], people.bob.scope)

    joined = expanded[0]
    assert joined.metadata["context_chunk_ids"] == [
        str(chunks[ordinal - 1].id),
        str(chunks[ordinal + 1].id),
    ]
    assert joined.metadata["chunk_id"] == hit.metadata["chunk_id"]  # still cites the hit
    # One sentence more on each side, and one contiguous stretch of the file: the
    # chunker's repeated overlap is not doubled.
    text = _squashed(joined.page_content)
    assert text.startswith(f"Receipt {first - 1} stays ") and text.endswith(
        f"Receipt {last + 1} stays {last + 4} years in room {(last + 1) % 4}."
    )
    assert _squashed(hit.page_content) in text and text in _squashed(LONG_TEXT)
    assert expanded[1:] == others  # only the first `hits` sources get context


async def test_the_budget_and_sources_already_present_limit_what_is_added(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = tmp_path / "expenses.txt"
    path.write_text(LONG_TEXT)
    chunks = await _chunks(kb, await _ingest(kb, path, _company(people.admin)))
    hit, following = _as_hit(chunks[2], "expenses.txt"), _as_hit(chunks[3], "expenses.txt")

    expanded = await NeighbourContext(kb.sessions).expand([hit, following], people.bob.scope)
    # The chunk after the hit is a source of its own: only the one before is joined.
    assert expanded[0].metadata["context_chunk_ids"] == [str(chunks[1].id)]

    no_budget = NeighbourContext(kb.sessions, max_characters=10)
    assert await no_budget.expand([hit], people.bob.scope) == [hit]


@needs_fixtures
async def test_a_neighbour_on_another_page_is_not_joined(kb: KnowledgeBase, people: People) -> None:
    pdf = FIXTURES / "pdf_multi-column.pdf"
    chunks = await _chunks(kb, await _ingest(kb, pdf, _company(people.admin)))
    index = next(
        i
        for i in range(1, len(chunks) - 1)
        if chunks[i - 1].page == chunks[i].page != chunks[i + 1].page
    )
    hit = _as_hit(chunks[index], pdf.name)

    [expanded] = await NeighbourContext(kb.sessions).expand([hit], people.bob.scope)

    # The citation names the hit's page, so only the same-page neighbour may join it.
    assert expanded.metadata["context_chunk_ids"] == [str(chunks[index - 1].id)]
    assert expanded.metadata["page"] == chunks[index].page
    assert _squashed(chunks[index + 1].text) not in _squashed(expanded.page_content)


async def test_a_neighbour_in_another_section_is_not_joined(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = tmp_path / "expenses.txt"
    path.write_text(LONG_TEXT)
    file_id = await _ingest(kb, path, _company(people.admin))
    async with kb.sessions() as session:  # as a loader that records headings would
        for chunk in await session.scalars(select(Chunk).where(Chunk.file_id == file_id)):
            chunk.location = "Receipts" if chunk.ordinal <= 2 else "Rooms"
        await session.commit()
    chunks = await _chunks(kb, file_id)

    [expanded] = await NeighbourContext(kb.sessions).expand(
        [_as_hit(chunks[2], "expenses.txt")], people.bob.scope
    )

    # The citation names the hit's section, so the next section's text stays out.
    assert expanded.metadata["context_chunk_ids"] == [str(chunks[1].id)]


async def test_nothing_outside_the_askers_scope_enters(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = tmp_path / "expenses.txt"
    path.write_text(LONG_TEXT)
    alices = await _ingest(kb, path, Ownership(uuid.UUID(people.alice.user_id)))  # personal
    chunks = await _chunks(kb, alices)
    hit = _as_hit(chunks[2], "expenses.txt")  # as a stale or wrong index might return it
    context = NeighbourContext(kb.sessions)

    assert await context.expand([hit], people.bob.scope) == [hit]
    [alice_sees] = await context.expand([hit], people.alice.scope)
    assert len(alice_sees.metadata["context_chunk_ids"]) == 2  # the check can tell them apart

    # A company file made personal on its row: the row decides, not what was indexed.
    path = tmp_path / "shared.txt"
    path.write_text(LONG_TEXT.replace("Receipt", "Ticket"))
    shared = await _ingest(kb, path, _company(people.admin))
    hit = _as_hit((await _chunks(kb, shared))[2], "shared.txt")
    assert (await context.expand([hit], people.bob.scope))[0] != hit
    async with kb.sessions() as session:
        (await session.get_one(File, shared)).scope = "personal"
        await session.commit()
    assert await context.expand([hit], people.bob.scope) == [hit]


async def test_the_chain_gets_context_as_configured(kb: KnowledgeBase) -> None:
    chain = AnswerChain.from_settings(kb.settings, kb.search, kb.embeddings, sessions=kb.sessions)
    assert chain.context is not None and chain.context.hits == kb.settings.answer_context_hits
    off = kb.settings.model_copy(update={"answer_context_hits": 0})
    assert (
        AnswerChain.from_settings(off, kb.search, kb.embeddings, sessions=kb.sessions).context
        is None
    )
    assert AnswerChain.from_settings(kb.settings, kb.search, kb.embeddings).context is None


async def test_a_sentence_cut_by_a_chunk_boundary_is_made_whole(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    sentences = [
        f"Clause {n} of the travel rules says that a hotel night in city {n} costs at most "
        f"{100 + n} euros."
        for n in range(1, 41)
    ]
    # Wrapped lines, as a PDF gives them: the chunker cuts at line ends, inside sentences.
    path = tmp_path / "rules.txt"
    path.write_text(textwrap.fill(" ".join(sentences), width=50))
    await _ingest(kb, path, _company(people.admin))
    documents, _ = await kb.search.search("Clause 21 hotel night city 21", people.bob.scope)
    hit = documents[0]
    assert not _squashed(hit.page_content).endswith(".")  # the cut this is about

    [joined] = await NeighbourContext(kb.sessions, hits=1).expand([hit], people.bob.scope)

    text = _squashed(joined.page_content)
    assert text.startswith("Clause ") and text.endswith(" euros.")
    assert _squashed(hit.page_content) in text and text in _squashed(" ".join(sentences))
