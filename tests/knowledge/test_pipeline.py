"""The overlapping ingestion pipeline: the same chunks, ids and index entries as reading,
chunking, embedding and storing each file one step after the other; and a file that fails
half-way leaves nothing behind while the files around it are indexed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from copilot.db.models import Chunk, File
from copilot.knowledge import pipeline
from copilot.knowledge.ingest import IngestRequest, chunk_uuid, ingest_files
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.loaders import load_document
from copilot.search.base import IndexedChunk
from tests.conftest import FIXTURES, People, owned_by, stored_counts

needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")


def _texts(tmp_path: Path) -> list[Path]:
    """Three small files in different formats, each several chunks long."""
    topics = {
        "alpha.md": ("# Alpha\n\n", "The Lisbon office opens at {i} o'clock on weekdays."),
        "beta.txt": ("", "Invoice number {i} is paid within thirty days by the customer."),
        "gamma.html": ("<html><body>", "<p>Heron sighting {i} was logged at the lake.</p>"),
    }
    paths = []
    for name, (head, line) in topics.items():
        path = tmp_path / name
        path.write_text(head + "\n\n".join(line.format(i=i) for i in range(80)))
        paths.append(path)
    return paths


def _small_batches(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many batches and page slices per file, so every stage hands over several times."""
    kb.settings = kb.settings.model_copy(update={"embedding_batch_size": 4})
    monkeypatch.setattr(pipeline, "PAGES_PER_SLICE", 2)


async def _rows(kb: KnowledgeBase, file_id: str) -> list[tuple[object, ...]]:
    async with kb.sessions() as session:
        chunks = await session.scalars(
            select(Chunk).where(Chunk.file_id == uuid.UUID(file_id)).order_by(Chunk.ordinal)
        )
        return [
            (c.id, c.ordinal, c.page, c.text, c.token_count, c.location, c.language) for c in chunks
        ]


@needs_fixtures
async def test_many_files_match_a_sequential_run(
    kb: KnowledgeBase, people: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_batches(kb, monkeypatch)
    paths = [FIXTURES / "pdf_multi-column.pdf", *_texts(tmp_path)]
    results = await ingest_files(
        kb, [IngestRequest(p) for p in paths], owned_by(people.admin, scope="company")
    )
    assert [r.outcome for r in results] == ["indexed"] * len(paths), results
    assert [r.name for r in results] == [p.name for p in paths]  # in the order asked

    for path, result in zip(paths, results, strict=True):
        # The straightforward way: the whole file read, chunked, embedded, one step each.
        drafts = kb.chunker.split(load_document(path).pages)
        file_id = uuid.UUID(result.file_id)
        expected = [
            (chunk_uuid(file_id, n), n, d.page, d.text, d.token_count, d.location, d.language)
            for n, d in enumerate(drafts)
        ]
        assert len(expected) > 4  # several batches of 4
        assert await _rows(kb, result.file_id) == expected
        assert result.chunks == len(expected)
        assert await stored_counts(kb, result.file_id) == (len(expected),) * 3
        async with kb.sessions() as session:
            file = await session.get_one(File, file_id)
        assert file.status == "ready" and file.chunk_count == len(expected)
        assert file.storage_path and Path(file.storage_path).read_bytes() == path.read_bytes()

        # Each index holds each chunk under its id, with its own vector.
        vectors = kb.embeddings.embed_documents([d.text for d in drafts])
        for ordinal in (0, len(drafts) // 2, len(drafts) - 1):
            chunk_id = str(chunk_uuid(file_id, ordinal))
            near = await kb.indexes.vector.search(vectors[ordinal], people.admin.scope, 1)
            assert near[0].chunk_id == chunk_id and near[0].text == drafts[ordinal].text
            assert near[0].score == pytest.approx(1.0, abs=1e-3)
            words = await kb.indexes.keyword.search(drafts[ordinal].text, people.admin.scope, 50)
            assert chunk_id in {hit.chunk_id for hit in words}
    # Nothing else reached the indexes.
    assert await kb.indexes.keyword.count() == sum(r.chunks for r in results)
    assert await kb.indexes.vector.count() == sum(r.chunks for r in results)


class _RefusingIndex:
    """An index that refuses any write holding a chunk of one file."""

    def __init__(self, inner: object, refused_name: str) -> None:
        self.inner, self.refused_name = inner, refused_name
        self.writes: list[set[str]] = []

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        names = {c.file_name for c in chunks}
        self.writes.append(names)
        if self.refused_name in names:
            raise RuntimeError("disk full")
        await self.inner.add(chunks)  # type: ignore[attr-defined]

    def __getattr__(self, attribute: str) -> object:
        return getattr(self.inner, attribute)


@pytest.mark.parametrize("refusing", ["keyword", "vector"])
async def test_an_index_refusing_one_file_leaves_nothing_of_it_and_spares_the_others(
    kb: KnowledgeBase,
    people: People,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refusing: str,
) -> None:
    _small_batches(kb, monkeypatch)
    engine = getattr(kb.indexes, refusing).name  # tantivy, lancedb
    index = _RefusingIndex(getattr(kb.indexes, refusing), "beta.txt")
    setattr(kb.indexes, refusing, index)
    paths = _texts(tmp_path)
    alpha, beta, gamma = await ingest_files(
        kb, [IngestRequest(p) for p in paths], owned_by(people.admin, scope="company")
    )
    assert beta.outcome == "failed" and f"the {engine} index" in (beta.error or "")
    assert "disk full" not in (beta.error or "")  # logged with the error id instead
    assert await stored_counts(kb, beta.file_id) == (0, 0, 0)
    async with kb.sessions() as session:
        file = await session.get_one(File, uuid.UUID(beta.file_id))
    assert file.status == "failed" and file.chunk_count == 0
    for result in (alpha, gamma):
        assert result.outcome == "indexed", result.error
        assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3
    assert any("beta.txt" in names for names in index.writes)


async def test_a_write_grouping_several_files_is_retried_file_by_file(
    kb: KnowledgeBase, people: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer indexes files that finished together in one write; when that write is
    refused, each file is tried alone, so only the file at fault fails."""
    index = _RefusingIndex(kb.indexes.vector, "beta.txt")
    kb.indexes.vector = index  # type: ignore[assignment]
    jobs: list[list[str]] = []
    real_index = pipeline._Pipeline._index

    async def grouped(self: pipeline._Pipeline, waiting: list[pipeline._Job]) -> None:
        jobs.append([job.claim.name for job in waiting])
        await real_index(self, waiting)

    async def write_all_at_the_end(self: pipeline._Pipeline, embedded: object) -> None:
        # Every file ends before the writer indexes any: one group of all three.
        events = []
        while (event := await embedded.get()) is not None:  # type: ignore[attr-defined]
            events.append(event)
        replay: object = _Replay(events)
        await real_write(self, replay)  # type: ignore[arg-type]

    real_write = pipeline._Pipeline.write
    monkeypatch.setattr(pipeline._Pipeline, "_index", grouped)
    monkeypatch.setattr(pipeline._Pipeline, "write", write_all_at_the_end)
    alpha, beta, gamma = await ingest_files(
        kb, [IngestRequest(p) for p in _texts(tmp_path)], owned_by(people.admin, scope="company")
    )
    assert jobs[0] == ["alpha.md", "beta.txt", "gamma.html"]
    assert jobs[1:] == [["alpha.md"], ["beta.txt"], ["gamma.html"]]
    assert (alpha.outcome, beta.outcome, gamma.outcome) == ("indexed", "failed", "indexed")
    assert await stored_counts(kb, beta.file_id) == (0, 0, 0)
    for result in (alpha, gamma):
        assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3


class _Replay:
    """A queue that hands out recorded events and reports more waiting until the last."""

    def __init__(self, events: list[object]) -> None:
        self.events = [*events, None]

    async def get(self) -> object:
        return self.events.pop(0)

    def empty(self) -> bool:
        return len(self.events) <= 1


async def test_an_embedding_failure_mid_file_removes_the_batches_already_stored(
    kb: KnowledgeBase, people: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_batches(kb, monkeypatch)
    real_embed = kb.embeddings.embed_documents
    stored_before_failure: list[int] = []

    def failing_on_beta(texts: list[str]) -> list[list[float]]:
        if "Invoice number 70 " in " ".join(texts):  # the third batch of beta.txt
            raise RuntimeError("model crashed")
        return real_embed(texts)

    monkeypatch.setattr(kb.embeddings, "embed_documents", failing_on_beta)
    real_store = pipeline._Pipeline._store_batch

    async def store(self: pipeline._Pipeline, event: pipeline._Vectors) -> None:
        await real_store(self, event)
        if event.job.claim.name == "beta.txt":
            stored_before_failure.append(len(event.drafts))

    monkeypatch.setattr(pipeline._Pipeline, "_store_batch", store)
    alpha, beta, gamma = await ingest_files(
        kb, [IngestRequest(p) for p in _texts(tmp_path)], owned_by(people.admin, scope="company")
    )
    assert stored_before_failure  # some of beta's rows were written before the failure
    assert beta.outcome == "failed" and "error id" in (beta.error or "")
    assert await stored_counts(kb, beta.file_id) == (0, 0, 0)
    for result in (alpha, gamma):
        assert result.outcome == "indexed"
        assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3


async def test_the_same_file_twice_in_one_run_is_a_duplicate(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    first = _texts(tmp_path)[0]
    copy = tmp_path / "copy.md"
    copy.write_bytes(first.read_bytes())
    original, duplicate = await ingest_files(
        kb, [IngestRequest(first), IngestRequest(copy)], owned_by(people.admin, scope="company")
    )
    assert original.outcome == "indexed" and duplicate.outcome == "duplicate"
    assert duplicate.file_id == original.file_id


async def test_progress_reports_each_stage_up_to_its_total(
    kb: KnowledgeBase, people: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_batches(kb, monkeypatch)
    seen: list[tuple[str, int, int]] = []

    async def report(stage: str, done: int, total: int) -> None:
        seen.append((stage, done, total))

    path = _texts(tmp_path)[1]
    requests = [IngestRequest(path, on_progress=report)]
    (result,) = await ingest_files(kb, requests, owned_by(people.admin, scope="company"))
    stages = [stage for stage, _, _ in seen]
    assert stages[0] == "parsing" and stages[-1] == "indexing"
    assert ("embedding", result.chunks, result.chunks) in seen
    assert seen[-1] == ("indexing", 2, 2)
    assert all(done <= total for _, done, total in seen)
