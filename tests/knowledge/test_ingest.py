"""Ingest -> search -> delete on the embedded engines, failures that leave nothing behind,
and access rules that hold whatever the query."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from copilot.db.models import Chunk, File
from copilot.knowledge.ingest import delete_file, ingest_file, reindex
from copilot.knowledge.knowledge_base import EmbeddingModelChanged, KnowledgeBase
from copilot.search.base import IndexedChunk
from copilot.users import Principal
from tests.conftest import FIXTURES, People, owned_by, stored_counts

# Only the tests that read ../shared/fixtures skip without it; the rest write their own files.
needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def _file_ids_found(kb: KnowledgeBase, query: str, who: Principal) -> set[str]:
    documents, report = await kb.search.search(query, who.scope, k=20)
    assert report.missing == {}
    return {d.metadata["file_id"] for d in documents}


@needs_fixtures
async def test_ingest_search_delete(kb: KnowledgeBase, people: People) -> None:
    pdf = FIXTURES / "pdf_multi-column.pdf"
    result = await ingest_file(kb, pdf, owned_by(people.admin, scope="company"))
    assert result.outcome == "indexed", result.error
    assert result.pages == 13 and result.chunks > 13
    assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3

    documents, _ = await kb.search.search("dense passage retrieval BM25", people.alice.scope)
    assert documents and documents[0].metadata["file_name"] == "pdf_multi-column.pdf"
    top = documents[0].metadata
    assert 1 <= top["page"] <= 13 and top["fused_score"] > 0
    # A hit's chunk id is the database row's id: sources can always be traced back.
    async with kb.sessions() as session:
        stored = await session.get(Chunk, uuid.UUID(top["chunk_id"]))
    assert stored is not None and stored.text == documents[0].page_content
    assert str(stored.file_id) == result.file_id and stored.page == top["page"]
    assert {"keyword_rank", "vector_rank"} & set(top)

    duplicate = await ingest_file(kb, pdf, owned_by(people.admin, scope="company"))
    assert duplicate.outcome == "duplicate" and duplicate.file_id == result.file_id

    assert await delete_file(kb, uuid.UUID(result.file_id))
    assert await stored_counts(kb, result.file_id) == (0, 0, 0)
    assert result.file_id not in await _file_ids_found(kb, "dense passage retrieval", people.alice)
    assert not await delete_file(kb, uuid.UUID(result.file_id))


@needs_fixtures
async def test_chunks_keep_their_pages(kb: KnowledgeBase, people: People) -> None:
    result = await ingest_file(
        kb, FIXTURES / "language-docs_fr_olap.pdf", owned_by(people.admin, scope="company")
    )
    assert result.outcome == "indexed" and result.pages == 12
    async with kb.sessions() as session:
        pages = set(
            (
                await session.scalars(
                    select(Chunk.page).where(Chunk.file_id == uuid.UUID(result.file_id))
                )
            ).all()
        )
    assert pages == set(range(1, 13))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("pdf_password.pdf", "password", marks=needs_fixtures),
        pytest.param("broken.pdf", "damaged", marks=needs_fixtures),
        ("picture.png", "supported types are"),
    ],
)
async def test_bad_files_fail_with_a_reason_and_leave_nothing(
    kb: KnowledgeBase, people: People, tmp_path: Path, name: str, reason: str
) -> None:
    path = FIXTURES / name
    if name == "broken.pdf":
        path = tmp_path / name
        path.write_bytes((FIXTURES / "pdf_multi-column.pdf").read_bytes()[:3000])
    if name == "picture.png":
        path = tmp_path / name
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    result = await ingest_file(kb, path, owned_by(people.alice))
    assert result.outcome == "failed"
    assert result.error and name in result.error
    assert reason in result.error.lower()
    assert await stored_counts(kb, result.file_id) == (0, 0, 0)
    async with kb.sessions() as session:
        file = await session.get_one(File, uuid.UUID(result.file_id))
    assert file.status == "failed" and file.error == result.error


async def test_empty_and_too_large_files_are_refused_before_any_row(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    empty = await ingest_file(kb, _write(tmp_path, "empty.txt", ""), owned_by(people.alice))
    assert empty.outcome == "failed" and "empty" in (empty.error or "")
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (kb.settings.max_upload_mb * 2**20 + 1))
    large = await ingest_file(kb, big, owned_by(people.alice))
    assert large.outcome == "failed" and "limit is" in (large.error or "")
    async with kb.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(File)) == 0


async def test_a_failed_file_can_be_fixed_and_ingested_again(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    class Flaky:
        def __init__(self, inner: object) -> None:
            self.inner, self.name, self.fail = inner, "vector", True

        async def add(self, chunks: Sequence[IndexedChunk]) -> None:
            if self.fail:
                raise RuntimeError("disk full")
            await self.inner.add(chunks)  # type: ignore[attr-defined]

        def __getattr__(self, attribute: str) -> object:
            return getattr(self.inner, attribute)

    flaky = Flaky(kb.indexes.vector)
    kb.indexes.vector = flaky  # type: ignore[assignment]
    path = _write(tmp_path, "notes.md", "# Notes\n\nThe quarterly offsite is in Lisbon.\n")
    failed = await ingest_file(kb, path, owned_by(people.alice))
    assert failed.outcome == "failed"
    # The index is named; its own message (internal detail) is logged with an error id.
    assert "vector index" in (failed.error or "") and "error id" in (failed.error or "")
    assert "disk full" not in (failed.error or "")
    # Compensation: the keyword index had accepted the chunks; they are gone again.
    assert await stored_counts(kb, failed.file_id) == (0, 0, 0)
    assert failed.file_id not in await _file_ids_found(kb, "offsite Lisbon", people.alice)

    flaky.fail = False
    retried = await ingest_file(kb, path, owned_by(people.alice))
    assert retried.outcome == "indexed" and retried.file_id == failed.file_id
    assert failed.file_id in await _file_ids_found(kb, "offsite Lisbon", people.alice)


async def test_personal_files_never_reach_anyone_else(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    secret = "Alice's salary negotiation notes: ask for 123456 zorblax credits in March."
    result = await ingest_file(kb, _write(tmp_path, "private.txt", secret), owned_by(people.alice))
    assert result.outcome == "indexed"
    assert result.file_id in await _file_ids_found(kb, secret, people.alice)
    for other in (people.bob, people.carol, people.power, people.admin):
        for query in (secret, "zorblax credits", "salary negotiation", "Alice"):
            assert result.file_id not in await _file_ids_found(kb, query, other)


async def test_department_and_classification_rules(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    eng = await ingest_file(
        kb,
        _write(tmp_path, "eng.md", "Engineering on-call rota uses PagerDuty escalation."),
        owned_by(
            people.alice, scope="department", department_id=uuid.UUID(people.alice.department_id)
        ),
    )
    confidential = await ingest_file(
        kb,
        _write(tmp_path, "merger.md", "Project Falcon merger terms are confidential."),
        owned_by(people.admin, scope="company", classification="confidential"),
    )
    public = await ingest_file(
        kb,
        _write(tmp_path, "holidays.md", "Company holidays include the Falcon day picnic."),
        owned_by(people.admin, scope="company", classification="public"),
    )
    assert eng.file_id in await _file_ids_found(kb, "on-call rota", people.bob)
    assert eng.file_id not in await _file_ids_found(kb, "on-call rota", people.carol)
    assert eng.file_id not in await _file_ids_found(kb, "on-call rota", people.admin)

    assert confidential.file_id not in await _file_ids_found(kb, "Falcon merger", people.bob)
    assert confidential.file_id in await _file_ids_found(kb, "Falcon merger", people.power)
    assert confidential.file_id in await _file_ids_found(kb, "Falcon merger", people.admin)
    assert public.file_id in await _file_ids_found(kb, "Falcon", people.bob)


async def test_reindex_rebuilds_from_the_database(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = _write(tmp_path, "policy.md", "Travel expenses above 500 euros need approval.\n" * 3)
    result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))
    await kb.indexes.keyword.clear()
    await kb.indexes.vector.clear()
    assert result.file_id not in await _file_ids_found(kb, "travel expenses", people.bob)
    assert (await reindex(kb)).chunks == result.chunks
    assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3
    assert result.file_id in await _file_ids_found(kb, "travel expenses approval", people.bob)
    assert (await reindex(kb, uuid.UUID(result.file_id))).chunks == result.chunks
    assert await stored_counts(kb, result.file_id) == (result.chunks,) * 3


async def test_a_different_embedding_model_is_refused(kb: KnowledgeBase) -> None:
    from copilot.knowledge.embeddings import EmbeddingModelInfo, LocalMiniLM

    class OtherModel(LocalMiniLM):
        info = EmbeddingModelInfo("other-model", 768)

    with pytest.raises(EmbeddingModelChanged, match="copilot reindex --all"):
        await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=OtherModel())


async def test_search_answers_when_one_engine_is_down(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = _write(tmp_path, "wifi.md", "The guest wifi password rotates every Monday.")
    result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))

    class Down:
        name = "keyword"

        async def search(self, *args: object, **kwargs: object) -> list[object]:
            raise ConnectionError("connection refused")

    kb.search.keyword = Down()  # type: ignore[assignment]
    documents, report = await kb.search.search("guest wifi password", people.bob.scope)
    assert "keyword" in report.missing and "connection refused" in report.missing["keyword"]
    assert documents and documents[0].metadata["file_id"] == result.file_id
    assert documents[0].metadata["vector_rank"] == 1


async def test_each_chunk_stores_its_language_and_is_searched_in_it(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    german = _write(
        tmp_path,
        "abschluss.md",
        "Der Jahresabschluss zum Geschäftsjahr 2020 wurde vom Vorstand aufgestellt.\n",
    )
    vietnamese = _write(
        tmp_path,
        "chinh-sach.md",
        "Chính sách công tác phí quy định mức giá phòng khách sạn tối đa cho nhân viên.\n",
    )
    ids = {}
    for path in (german, vietnamese):
        result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))
        assert result.outcome == "indexed", result.error
        ids[path.name] = result.file_id
    async with kb.sessions() as session:
        stored = dict((await session.execute(select(Chunk.file_id, Chunk.language))).all())
    assert stored == {uuid.UUID(ids["abschluss.md"]): "de", uuid.UUID(ids["chinh-sach.md"]): "vi"}

    documents, _ = await kb.search.search("Jahresabschlüsse des Geschäftsjahres", people.bob.scope)
    assert documents[0].metadata["file_id"] == ids["abschluss.md"]
    assert documents[0].metadata["language"] == "de"
    assert ids["chinh-sach.md"] in await _file_ids_found(kb, "gia phong khach san", people.bob)

    # Chunks stored before languages were detected get theirs at `copilot reindex --all`.
    async with kb.sessions() as session:
        await session.execute(update(Chunk).values(language=None))
        await session.commit()
    await reindex(kb)
    async with kb.sessions() as session:
        languages = set((await session.scalars(select(Chunk.language))).all())
    assert languages == {"de", "vi"}
    documents, _ = await kb.search.search("Geschäftsjahres", people.bob.scope)
    assert documents[0].metadata["language"] == "de"
