"""The query cache never serves what the indexes no longer hold, nor what the asker may
no longer read: real files ingested into the embedded indexes, a real (embedded) Redis.

Most tests keep results at once after a change (`settle_seconds=0`); the settling rule
has its own test.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from langchain_core.documents import Document
from redis.asyncio import Redis

from copilot import users
from copilot.answer.chain import AnswerChain
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.knowledge.access import set_file_access
from copilot.knowledge.ingest import delete_file, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources import sync_source
from copilot.knowledge.sources.catalog import NewSource, add_source
from copilot.search.ensemble import HybridSearch
from copilot.search.vector_embedded import EmbeddedVectorIndex
from copilot.services import Services, open_services
from copilot.settings import Settings
from copilot.state.query_cache import (
    ENTRY_PREFIX,
    IndexGeneration,
    LocalGeneration,
    QueryCache,
)
from copilot.state.redis import RedisHandle, connect_redis
from tests.conftest import People, owned_by

QUESTION = "How are wombat enclosure inspections scheduled?"
TEXT = "Wombat enclosure inspections are scheduled every second Tuesday by the keepers."


@pytest.fixture
async def redis(sqlite_settings: Settings) -> AsyncIterator[RedisHandle]:
    """The embedded Redis of the test's own data dir (nothing shared with other tests)."""
    handle = connect_redis(sqlite_settings)
    try:
        yield handle
    finally:
        await handle.aclose()


@pytest.fixture
async def cached(kb: KnowledgeBase, redis: RedisHandle) -> KnowledgeBase:
    """The knowledge base as the composition root builds it: the Redis generation, and
    the query cache in its search."""
    cache = QueryCache(redis.client, 600, settle_seconds=0)
    return replace(
        kb, search=replace(kb.search, cache=cache), generation=IndexGeneration(redis.client)
    )


def cache_of(kb: KnowledgeBase) -> QueryCache:
    assert isinstance(kb.search.cache, QueryCache)
    return kb.search.cache


async def _ingest(
    kb: KnowledgeBase, tmp_path: Path, people: People, text: str = TEXT, **access: object
) -> str:
    path = tmp_path / f"wombats-{uuid.uuid4().hex[:6]}.md"
    path.write_text(f"# Wombats\n\n{text}\n")
    result = await ingest_file(kb, path, owned_by(people.admin, **access))  # type: ignore[arg-type]
    assert result.outcome == "indexed", result.summary
    return result.file_id


def files_of(documents: list[Document]) -> set[str]:
    return {str(d.metadata["file_id"]) for d in documents}


async def test_a_repeated_search_is_answered_from_the_cache(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingest(cached, tmp_path, people, scope="company")
    first, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached and file_id in files_of(first)
    again, report = await cached.search.search(QUESTION, people.bob.scope)
    assert report.cached
    assert [(d.id, d.page_content, d.metadata) for d in again] == [
        (d.id, d.page_content, d.metadata) for d in first
    ]
    assert (cache_of(cached).counts.hits, cache_of(cached).counts.misses) == (1, 1)
    # Another k, language or tag filter is another search.
    for other in ({"k": 3}, {"language": "de"}, {"tags": ["hr"]}):
        _, report = await cached.search.search(QUESTION, people.bob.scope, **other)  # type: ignore[arg-type]
        assert not report.cached, other


async def test_a_deleted_file_is_never_served_from_the_cache(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingest(cached, tmp_path, people, scope="company")
    for _ in range(2):
        documents, report = await cached.search.search(QUESTION, people.bob.scope)
        assert file_id in files_of(documents)
    assert report.cached
    assert await delete_file(cached, uuid.UUID(file_id))
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached
    assert file_id not in files_of(documents)


async def test_a_changed_file_is_never_served_in_its_old_version(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """The file replaced by a new one (what a re-upload or a sync does): the old text's
    chunks are gone from the cached answer too."""
    old = await _ingest(cached, tmp_path, people, scope="company")
    await cached.search.search(QUESTION, people.bob.scope)
    assert (await cached.search.search(QUESTION, people.bob.scope))[1].cached
    await delete_file(cached, uuid.UUID(old))
    new_text = "Wombat enclosure inspections now happen every Friday at dawn."
    new = await _ingest(cached, tmp_path, people, text=new_text, scope="company")
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached
    assert files_of(documents) >= {new} and old not in files_of(documents)
    assert all("second Tuesday" not in d.page_content for d in documents)


async def test_a_synced_edit_and_deletion_are_never_served_from_the_cache(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """A data source's file edited (a new version of the same file, switched in one
    commit) and then deleted at the source: the cached question follows each sync."""
    folder = tmp_path / "share"
    folder.mkdir()
    page = folder / "wombats.md"
    page.write_text(f"# Wombats\n\n{TEXT}\n")
    (folder / "otters.md").write_text("# Otters\n\nOtters are fed twice a day.\n")
    async with cached.sessions() as session:
        source = await add_source(
            session, NewSource("zoo", folder, uuid.UUID(people.admin.user_id))
        )
    assert (await sync_source(cached, source.id)).added == 2
    await cached.search.search(QUESTION, people.bob.scope)
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert report.cached and any("second Tuesday" in d.page_content for d in documents)

    page.write_text("# Wombats\n\nWombat enclosure inspections now happen every Friday.\n")
    later = time.time() + 5
    os.utime(page, (later, later))
    assert (await sync_source(cached, source.id)).updated == 1
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached
    assert any("every Friday" in d.page_content for d in documents)
    assert all("second Tuesday" not in d.page_content for d in documents)
    await cached.search.search(QUESTION, people.bob.scope)  # cached again

    page.unlink()
    assert (await sync_source(cached, source.id)).deleted == 1
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached and all("Wombat" not in d.page_content for d in documents)


async def test_an_access_change_is_never_served_the_stale_result(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    file_id = await _ingest(cached, tmp_path, people, scope="company")
    await cached.search.search(QUESTION, people.bob.scope)
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert report.cached and file_id in files_of(documents)
    await set_file_access(cached, uuid.UUID(file_id), scope="personal")  # the admin's own now
    documents, report = await cached.search.search(QUESTION, people.bob.scope)
    assert not report.cached and file_id not in files_of(documents)


async def test_a_user_moved_to_another_department_is_never_served_the_old_scope(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """Moving a user changes no index (no generation bump): their access tokens are in
    the key, so the moved user's question is another entry."""
    eng = people.alice.department_id
    assert eng is not None
    file_id = await _ingest(
        cached, tmp_path, people, scope="department", department_id=uuid.UUID(eng)
    )
    await cached.search.search(QUESTION, people.alice.scope)
    documents, report = await cached.search.search(QUESTION, people.alice.scope)
    assert report.cached and file_id in files_of(documents)
    async with cached.sessions() as session:
        finance = await users.get_department(session, "FIN")
        alice = await users.require_user(session, people.alice.email)
        alice.department_id = finance.id
        await session.commit()
    async with cached.sessions() as session:
        moved = users.principal_of(await users.require_user(session, people.alice.email))
    assert moved.department_code == "FIN"
    documents, report = await cached.search.search(QUESTION, moved.scope)
    assert not report.cached and file_id not in files_of(documents)


async def test_two_users_with_different_scopes_never_share_an_entry(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    mine = await _ingest(cached, tmp_path, people)  # the admin's personal file
    documents, _ = await cached.search.search(QUESTION, people.admin.scope)
    assert mine in files_of(documents)
    assert (await cached.search.search(QUESTION, people.admin.scope))[1].cached
    for other in (people.alice, people.bob, people.carol, people.power):
        documents, report = await cached.search.search(QUESTION, other.scope)
        assert not report.cached and mine not in files_of(documents), other.email
    # Same question, same settings: the key still differs by scope, and only by scope.
    search = cached.search
    keys = {search.cache_key(QUESTION, p.scope, None, None, ()) for p in (people.alice, people.bob)}
    assert len(keys) == 2
    assert search.cache_key(QUESTION, people.bob.scope, None, None, ("a", "b")) == search.cache_key(
        QUESTION, people.bob.scope, None, None, ("b", "a", "a")
    )


async def test_a_result_computed_while_the_indexes_changed_is_never_served(
    redis: RedisHandle,
) -> None:
    """A search that read generation G, then saw an index change: kept under G, which
    the change's bump retired, so the next lookup misses."""
    cache = QueryCache(redis.client, 600, settle_seconds=0)
    generation = IndexGeneration(redis.client)
    lookup = await cache.lookup("k")
    assert lookup.documents is None
    await generation.bump()  # the change lands while the search runs
    await lookup.keep([Document(id="c1", page_content="old text", metadata={})])
    assert (await cache.lookup("k")).documents is None
    fresh = await cache.lookup("k")
    await fresh.keep([Document(id="c2", page_content="new text", metadata={"rank": 1})])
    (served,) = (await cache.lookup("k")).documents or []
    assert (served.id, served.page_content, served.metadata) == ("c2", "new text", {"rank": 1})
    ttl = await redis.client.ttl(ENTRY_PREFIX + "k")
    assert 0 < ttl <= 600


async def test_nothing_is_kept_while_other_processes_may_still_search_old_snapshots(
    redis: RedisHandle,
) -> None:
    cache = QueryCache(redis.client, 600, settle_seconds=60)
    await IndexGeneration(redis.client).bump()
    lookup = await cache.lookup("k")
    await lookup.keep([Document(id="c1", page_content="text", metadata={})])
    assert await redis.client.exists(ENTRY_PREFIX + "k") == 0


async def test_a_search_with_an_engine_missing_is_not_kept(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    await _ingest(cached, tmp_path, people, scope="company")
    broken = EmbeddedVectorIndex(tmp_path / "broken", cached.embeddings.info.dimension)
    await broken.close()  # every search now fails: "index is closed"
    degraded = replace(cached.search, vector=broken)
    for _ in range(2):
        documents, report = await degraded.search(QUESTION, people.bob.scope)
        assert "vector" in report.missing and documents and not report.cached


async def test_a_cached_answer_still_goes_through_the_database_check(
    cached: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """The chain looks every source up in the database (ChunkLocations), cached or not."""
    await _ingest(cached, tmp_path, people, scope="company")
    located: list[list[str]] = []

    async def locate(documents: list[Document]) -> list[Document]:
        located.append([str(d.id) for d in documents])
        return await cached.locations(documents)

    chain = AnswerChain(
        cached.search,
        model=None,
        model_name="extractive",
        extractive=ExtractiveAnswerer(cached.embeddings),
        locate=locate,
    )
    for _ in range(2):
        result = await chain.answer(QUESTION, people.bob.scope)
        assert result.sources and "second Tuesday" in result.text
    assert cache_of(cached).counts.hits == 1
    assert len(located) == 2 and located[0] == located[1]


async def test_the_composition_root_shares_the_generation_and_can_turn_the_cache_off(
    sqlite_settings: Settings, embeddings: object
) -> None:
    from copilot.db import migrate

    migrate.upgrade(sqlite_settings)
    async with open_services(sqlite_settings, knowledge=True, embeddings=embeddings) as services:  # type: ignore[arg-type]
        kb = services.kb
        assert isinstance(kb.generation, IndexGeneration)
        assert isinstance(kb.search.cache, QueryCache)
        before = await IndexGeneration(services.redis.client).current()
        await kb.indexes_changed()
        assert await IndexGeneration(services.redis.client).current() == before + 1
    off = Settings(data_dir=sqlite_settings.data_dir, query_cache=False)
    assert Services(off).query_cache is None
    unused = QueryCache(Redis(), 60)  # never connects
    search = HybridSearch.from_settings(
        off, kb.indexes.keyword, kb.indexes.vector, kb.embeddings, unused
    )
    assert search.cache is None


async def test_a_knowledge_base_without_redis_counts_its_changes_locally(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    assert isinstance(kb.generation, LocalGeneration) and kb.search.cache is None
    file_id = await _ingest(kb, tmp_path, people, scope="company")
    after_ingest = await kb.generation.current()
    assert after_ingest >= 1
    await delete_file(kb, uuid.UUID(file_id))
    assert await kb.generation.current() > after_ingest
