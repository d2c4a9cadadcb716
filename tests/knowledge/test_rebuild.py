"""`copilot reindex --all` builds new embedded indexes beside the live ones (real tantivy
and LanceDB) and switches when complete: search answers meanwhile, a failure leaves the
live ones intact, writes made during the rebuild are kept, access rules still hold."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from copilot.knowledge.access import set_file_access
from copilot.knowledge.embeddings import EmbeddingModelInfo, LocalMiniLM
from copilot.knowledge.ingest import IngestResult, Ownership, delete_file, ingest_file, reindex
from copilot.knowledge.knowledge_base import EmbeddingModelChanged, KnowledgeBase
from copilot.search.base import SearchIndexError
from copilot.search.generations import EmbeddedGenerations
from copilot.settings import Settings
from copilot.users import Principal
from tests.conftest import People, open_kb


@pytest.fixture
async def kb(database_settings: Settings, embeddings: LocalMiniLM) -> AsyncIterator[KnowledgeBase]:
    """Rebuilds read PostgreSQL (or SQLite), the truth: each test runs on both."""
    async with open_kb(database_settings, embeddings) as knowledge:
        yield knowledge


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def _ingest(
    kb: KnowledgeBase, tmp_path: Path, owner: Principal, name: str, text: str, scope: str
) -> IngestResult:
    ownership = Ownership(uuid.UUID(owner.user_id), scope=scope)  # type: ignore[arg-type]
    result = await ingest_file(kb, _write(tmp_path, name, text), ownership)
    assert result.outcome == "indexed", result.error
    return result


async def _found(kb: KnowledgeBase, query: str, who: Principal) -> set[str]:
    documents, report = await kb.search.search(query, who.scope, k=20)
    assert report.missing == {}
    return {d.metadata["file_id"] for d in documents}


def _folders(kb: KnowledgeBase) -> set[str]:
    return {p.name for p in kb.settings.ensure_data_dir().iterdir() if p.is_dir()} - {"files"}


def _pointer(kb: KnowledgeBase, family: str) -> dict[str, str | None]:
    path = kb.settings.ensure_data_dir() / f"{family}.live.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@asynccontextmanager
async def _second_handle(kb: KnowledgeBase) -> AsyncIterator[KnowledgeBase]:
    """Another KnowledgeBase on the same data dir, as the web app beside the CLI."""
    other = await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=kb.embeddings)
    try:
        yield other
    finally:
        await other.close()


def _pausing_at_last_file() -> tuple[
    asyncio.Event, asyncio.Event, Callable[[str, int, int], Awaitable[None]]
]:
    """A progress hook that holds the rebuild once its first pass has indexed every file."""
    paused, resume = asyncio.Event(), asyncio.Event()

    async def on_progress(stage: str, done: int, total: int) -> None:
        if done == total and not paused.is_set():
            paused.set()
            await resume.wait()

    return paused, resume, on_progress


async def test_search_answers_during_a_rebuild_and_writes_meanwhile_are_kept(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    travel = await _ingest(
        kb, tmp_path, people.admin, "travel.md", "Travel expenses need approval.", "company"
    )
    doomed = await _ingest(
        kb, tmp_path, people.admin, "zebra.md", "Zebra crossing rules for the car park.", "company"
    )
    shared = await _ingest(
        kb, tmp_path, people.alice, "salary.md", "Alice salary review notes.", "company"
    )
    diary = await _ingest(
        kb, tmp_path, people.alice, "diary.md", "Alice private diary about kangaroos.", "personal"
    )
    paused, resume, on_progress = _pausing_at_last_file()
    async with _second_handle(kb) as app:
        rebuild = asyncio.create_task(reindex(kb, None, on_progress))
        await asyncio.wait_for(paused.wait(), 120)
        # The new generation is complete but not live: both handles answer from the old.
        assert _pointer(kb, "keyword") == {
            "live": "keyword-index",
            "building": "keyword-2",
            "last": 2,
        }
        assert _pointer(kb, "vectors") == {
            "live": "vector-index",
            "building": "vectors-2",
            "last": 2,
        }
        for handle in (kb, app):
            assert travel.file_id in await _found(handle, "travel expenses approval", people.bob)
        assert await app.indexes.keyword.count() == 4

        # Meanwhile the app takes an upload, a delete and an access change.
        added = await _ingest(
            app, tmp_path, people.admin, "wifi.md", "The guest wifi password rotates.", "company"
        )
        assert await delete_file(app, uuid.UUID(doomed.file_id))
        await set_file_access(app, uuid.UUID(shared.file_id), scope="personal")
        assert added.file_id in await _found(app, "guest wifi password", people.bob)

        resume.set()
        reindexed = await asyncio.wait_for(rebuild, 120)
        assert reindexed.chunks == 5  # four before, the upload's one in the catch-up pass

        # The switch: the old folders are gone, and the second handle follows at once.
        assert _pointer(kb, "keyword") == {"live": "keyword-2", "building": None, "last": 2}
        assert _folders(kb) == {"keyword-2", "vectors-2"}
        for handle in (kb, app):
            assert await handle.indexes.keyword.count() == await handle.indexes.vector.count() == 4
            assert isinstance(handle.indexes.keyword, EmbeddedGenerations)
            assert handle.indexes.keyword.live_generation == "keyword-2"
            assert travel.file_id in await _found(handle, "travel expenses approval", people.bob)
            assert added.file_id in await _found(handle, "guest wifi password", people.bob)
            assert doomed.file_id not in await _found(handle, "zebra crossing", people.admin)
            # Access rules hold in the new generation, also for the change made meanwhile.
            for query, file in (("kangaroos diary", diary), ("salary review", shared)):
                assert file.file_id in await _found(handle, query, people.alice)
                assert file.file_id not in await _found(handle, query, people.bob)
                assert file.file_id not in await _found(handle, query, people.admin)


async def test_a_failed_rebuild_leaves_the_live_indexes_and_no_partial_folder(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    travel = await _ingest(
        kb, tmp_path, people.admin, "travel.md", "Travel expenses need approval.", "company"
    )

    def broken(stage: str, done: int, total: int) -> None:
        raise RuntimeError("disk full")

    async with _second_handle(kb) as app:
        with pytest.raises(RuntimeError, match="disk full"):
            await reindex(kb, None, broken)
        assert _folders(kb) == {"keyword-index", "vector-index"}
        assert _pointer(kb, "keyword") == {"live": "keyword-index", "building": None, "last": 2}
        for handle in (kb, app):
            assert travel.file_id in await _found(handle, "travel expenses approval", people.bob)
        # Nothing is left locked: the next rebuild goes through (a number is never reused:
        # another process may still hold the discarded generation open).
        assert (await reindex(kb)).chunks == 1
        assert _folders(kb) == {"keyword-3", "vectors-3"}
        assert travel.file_id in await _found(app, "travel expenses approval", people.bob)


async def test_one_rebuild_at_a_time(tmp_path: Path) -> None:
    from copilot.search.keyword_embedded import EmbeddedKeywordIndex

    first = EmbeddedGenerations(tmp_path, "keyword", "keyword-index", EmbeddedKeywordIndex)
    second = EmbeddedGenerations(tmp_path, "keyword", "keyword-index", EmbeddedKeywordIndex)
    rebuilt = await first.begin_rebuild()
    with pytest.raises(SearchIndexError, match="another `copilot reindex --all`"):
        await second.begin_rebuild()
    await first.discard(rebuilt)
    await second.discard(await second.begin_rebuild())
    await first.close()
    await second.close()


class PaddedMiniLM(LocalMiniLM):
    """Another model (another name and dimension): MiniLM's vectors with one more zero."""

    info = EmbeddingModelInfo("padded-minilm", 385)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[*vector, 0.0] for vector in super().embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        return [*super().embed_query(text), 0.0]


async def test_a_model_change_is_built_beside_and_recorded_at_the_switch(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    travel = await _ingest(
        kb, tmp_path, people.admin, "travel.md", "Travel expenses need approval.", "company"
    )
    with pytest.raises(EmbeddingModelChanged):
        await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=PaddedMiniLM())
    changed = await KnowledgeBase.open(
        kb.settings, kb.sessions, embeddings=PaddedMiniLM(), allow_model_change=True
    )
    try:
        paused, resume, on_progress = _pausing_at_last_file()
        rebuild = asyncio.create_task(reindex(changed, None, on_progress))
        await asyncio.wait_for(paused.wait(), 120)
        documents, report = await kb.search.search("travel approval", people.bob.scope)
        assert report.missing == {}  # the old model's vectors still answer
        # The app, still on the old model, takes an upload and a delete meanwhile: the
        # new generation refuses its vectors, the catch-up pass embeds the upload anew.
        wifi = await _ingest(
            kb, tmp_path, people.admin, "wifi.md", "The guest wifi password rotates.", "company"
        )
        assert await delete_file(kb, uuid.UUID(travel.file_id))
        with pytest.raises(EmbeddingModelChanged):  # not recorded before the switch
            await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=PaddedMiniLM())
        resume.set()
        await asyncio.wait_for(rebuild, 120)
        assert wifi.file_id in await _found(changed, "guest wifi password", people.bob)
        assert travel.file_id not in await _found(changed, "travel expenses approval", people.bob)
        assert await changed.indexes.vector.count() == 1
    finally:
        await changed.close()
    reopened = await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=PaddedMiniLM())
    await reopened.close()
    with pytest.raises(EmbeddingModelChanged):
        await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=kb.embeddings)


async def test_a_server_in_another_process_follows_the_switch(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """The other process's search sees the old generation until the switch, then the new
    one, without reopening anything."""
    travel = await _ingest(
        kb, tmp_path, people.admin, "travel.md", "Travel expenses need approval.", "company"
    )
    await kb.indexes.keyword.clear()  # so the old generation is told apart: it finds nothing
    script = textwrap.dedent(f"""
        import asyncio, sys
        from copilot.search.factory import open_keyword_index
        from copilot.search.scope import AccessScope
        from copilot.settings import Settings
        async def main():
            index = open_keyword_index(Settings(data_dir={str(kb.settings.data_dir)!r}))
            scope = AccessScope({people.bob.user_id!r}, None, frozenset({{"internal"}}))
            seen = None
            for _ in range(1200):
                hits = await index.search("travel approval", scope, 5)
                found = sorted({{h.file_id for h in hits}})
                if found != seen:
                    print(",".join(found) or "-", index.live_generation, flush=True)
                    seen = found
                if found:
                    break
                await asyncio.sleep(0.05)
            await index.close()
        asyncio.run(main())
    """)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert first.decode().split() == ["-", "keyword-index"]
    await reindex(kb)
    second = await asyncio.wait_for(process.stdout.readline(), 60)
    assert second.decode().split() == [travel.file_id, "keyword-2"]
    assert await asyncio.wait_for(process.wait(), 60) == 0
