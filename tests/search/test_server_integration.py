"""Integration suite against real Elasticsearch and Weaviate servers.

Set COPILOT_TEST_ELASTICSEARCH_URL (optionally COPILOT_TEST_ELASTICSEARCH_API_KEY) and
COPILOT_TEST_WEAVIATE_URL (optionally COPILOT_TEST_WEAVIATE_GRPC_PORT, default 50051, and
COPILOT_TEST_WEAVIATE_API_KEY), e.g. after `docker compose up elasticsearch weaviate`.
Unset: the tests skip with the reason. Set but unreachable: they fail, so CI cannot go
green by accident.

The scenario is engine-neutral: `run_keyword_scenario(index)` and
`run_vector_scenario(index, dimension)` take any `KeywordIndex` / `VectorIndex`, so the
embedded engines and the wire fakes run exactly the same checks (always, at the end of
this module). Each run uses its own index/collection name and removes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from copilot.search.base import Hit, IndexedChunk, KeywordIndex, Rebuildable, VectorIndex
from copilot.search.generations import EmbeddedGenerations
from copilot.search.keyword_elasticsearch import ElasticsearchKeywordIndex
from copilot.search.keyword_embedded import EmbeddedKeywordIndex
from copilot.search.scope import AccessScope, ChunkAccess
from copilot.search.vector_embedded import EmbeddedVectorIndex
from copilot.search.vector_weaviate import WeaviateVectorIndex

pytestmark = pytest.mark.integration

DIMENSION = 8
ALL_LEVELS = frozenset({"public", "internal", "secret"})


# ---- the engine-neutral scenario ----------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Chunks with disjoint vocabularies and near-orthogonal vectors, plus their readers."""

    chunks: dict[str, IndexedChunk]
    users: dict[str, AccessScope]
    files: dict[str, list[str]]


def build_corpus(dimension: int = DIMENSION) -> Corpus:
    run = uuid.uuid4().hex[:8]  # unique ids: a shared server never mixes two runs

    def vec(i: int) -> list[float]:
        v = [0.01 * ((i + j) % 3) for j in range(dimension)]
        v[i % dimension] = 1.0
        return v

    specs = [
        # key, file, text, owner, scope, department, classification
        ("a_personal", "fa", "zephyr quokka manifesto", "alice", "personal", None, "internal"),
        ("b_personal", "fb", "walrus tangerine diary", "bob", "personal", None, "internal"),
        ("company_pub", "fc", "lighthouse pelican handbook", "ceo", "company", None, "public"),
        ("company_sec", "fc", "obsidian falcon strategy", "ceo", "company", None, "secret"),
        ("sales_int", "fs", "marmalade cactus quota", "carol", "department", "sales", "internal"),
        ("eng_int", "fe", "gravel hedgehog roadmap", "dave", "department", "eng", "internal"),
    ]
    chunks = {}
    for i, (key, file_key, text, owner, scope, dept, level) in enumerate(specs):
        chunks[key] = IndexedChunk(
            chunk_id=f"{run}-{key}",
            file_id=f"{run}-{file_key}",
            file_name=f"{file_key}.txt",
            ordinal=i,
            page=None if i % 2 else i + 1,
            text=text,
            access=ChunkAccess(
                owner_id=f"{run}-{owner}",
                scope=scope,
                department_id=f"{run}-{dept}" if dept else None,
                classification=level,
            ),
            vector=vec(i),
        )
    public_internal = frozenset({"public", "internal"})
    users = {
        "alice": AccessScope(f"{run}-alice", f"{run}-sales", public_internal),
        "bob": AccessScope(f"{run}-bob", f"{run}-eng", public_internal),
        "boss": AccessScope(f"{run}-boss", f"{run}-sales", ALL_LEVELS),
        "guest": AccessScope(f"{run}-guest", None, frozenset()),
    }
    files: dict[str, list[str]] = {}
    for key, c in chunks.items():
        files.setdefault(c.file_id, []).append(key)
    return Corpus(chunks=chunks, users=users, files=files)


Search = Callable[[IndexedChunk, AccessScope, int], Awaitable[list[Hit]]]


async def _run_scenario(
    index: KeywordIndex | VectorIndex, search: Search, corpus: Corpus, *, exhaustive: bool
) -> None:
    """Ingest, search, isolation, idempotent re-add, delete, count, health, clear.

    `search(chunk, scope, k)` searches with the probe that should find `chunk` (its text, or
    its vector). With `exhaustive` (vector search returns the k nearest, however far), a
    search with k >= corpus size must return exactly the chunks the scope allows.
    """
    chunks = corpus.chunks
    total = len(chunks)
    k = total + 4

    await index.clear()
    assert await index.count() == 0

    await index.add(list(chunks.values()))
    assert await index.count() == total
    for file_id, keys in corpus.files.items():
        assert await index.count(file_id) == len(keys)
    assert await index.count("no-such-file") == 0

    by_id = {c.chunk_id: c for c in chunks.values()}
    for user, scope in corpus.users.items():
        allowed = {c.chunk_id for c in chunks.values() if scope.allows(c.access)}
        for key, target in chunks.items():
            hits = await search(target, scope, k)
            ids = [h.chunk_id for h in hits]
            assert len(ids) == len(set(ids)), f"duplicate hits for {user}/{key}: {ids}"
            leaked = set(ids) - allowed
            assert not leaked, f"{user} querying {key} received unreadable chunks {leaked}"
            if scope.allows(target.access):
                assert ids and ids[0] == target.chunk_id, f"{user} should find {key} first"
                top = hits[0]
                assert (top.file_id, top.file_name, top.ordinal, top.page, top.text) == (
                    target.file_id,
                    target.file_name,
                    target.ordinal,
                    target.page,
                    target.text,
                )
            else:
                assert target.chunk_id not in ids
            if exhaustive:
                assert set(ids) == allowed, f"{user} querying {key}: {ids} != {allowed}"
            for a, b in pairwise(hits):
                assert a.score >= b.score, f"hits not ordered by score: {hits}"
            assert all(h.chunk_id in by_id for h in hits)

    # Isolation, spelled out: Alice's personal chunk never reaches Bob, even by its text.
    alice_chunk = chunks["a_personal"]
    assert alice_chunk.chunk_id not in {
        h.chunk_id for h in await search(alice_chunk, corpus.users["bob"], k)
    }
    assert alice_chunk.chunk_id in {
        h.chunk_id for h in await search(alice_chunk, corpus.users["alice"], k)
    }

    # Re-adding the same chunk ids overwrites instead of duplicating.
    await index.add([chunks["company_pub"], chunks["sales_int"]])
    assert await index.count() == total

    # Changing a file's access in place: alice's personal file, then sales' again.
    sales = chunks["sales_int"]
    await index.update_access(sales.file_id, corpus.chunks["a_personal"].access)
    assert await index.count() == total
    for user, readable in (("alice", True), ("boss", False), ("bob", False)):
        ids = [h.chunk_id for h in await search(sales, corpus.users[user], k)]
        assert (sales.chunk_id in ids) is readable, (user, ids)
    (moved,) = [
        h for h in await search(sales, corpus.users["alice"], k) if h.chunk_id == sales.chunk_id
    ]
    assert (moved.text, moved.metadata["scope"]) == (sales.text, "personal")
    await index.update_access(sales.file_id, sales.access)
    assert sales.chunk_id in {h.chunk_id for h in await search(sales, corpus.users["boss"], k)}
    await index.update_access("no-such-file", sales.access)  # changing nothing is fine

    # Delete one file: its chunks disappear from counts and results; others stay.
    gone = chunks["company_pub"].file_id
    await index.delete_file(gone)
    assert await index.count(gone) == 0
    assert await index.count() == total - len(corpus.files[gone])
    hits = await search(chunks["company_pub"], corpus.users["boss"], k)
    assert not {h.chunk_id for h in hits} & {chunks[key].chunk_id for key in corpus.files[gone]}
    hits = await search(chunks["sales_int"], corpus.users["boss"], k)
    assert hits and hits[0].chunk_id == chunks["sales_int"].chunk_id
    await index.delete_file("no-such-file")  # deleting nothing is fine

    health = await index.health()
    assert health.ok, health.detail
    assert health.latency_ms >= 0

    await index.clear()
    assert await index.count() == 0
    assert await search(chunks["sales_int"], corpus.users["boss"], k) == []


async def run_keyword_scenario(index: KeywordIndex, corpus: Corpus | None = None) -> None:
    """The scenario for any BM25 index: the probe is the chunk's exact text."""

    async def search(chunk: IndexedChunk, scope: AccessScope, k: int) -> list[Hit]:
        return await index.search(chunk.text, scope, k)

    await _run_scenario(index, search, corpus or build_corpus(), exhaustive=False)


async def run_vector_scenario(
    index: VectorIndex, dimension: int = DIMENSION, corpus: Corpus | None = None
) -> None:
    """The scenario for any vector index: the probe is the chunk's exact vector."""

    async def search(chunk: IndexedChunk, scope: AccessScope, k: int) -> list[Hit]:
        assert chunk.vector is not None
        return await index.search(chunk.vector, scope, k)

    await _run_scenario(index, search, corpus or build_corpus(dimension), exhaustive=True)


async def _run_rebuild_scenario(index: KeywordIndex | VectorIndex, search: Search) -> None:
    """A rebuild beside the live index: search answers from the live one meanwhile, writes
    meanwhile reach the new one, the switch is complete, access rules hold after it, and a
    discarded rebuild leaves the live index as it was."""
    assert isinstance(index, Rebuildable)
    corpus = build_corpus()
    chunks, users = corpus.chunks, corpus.users
    k = len(chunks) + 4

    async def ids(chunk: IndexedChunk, user: str) -> set[str]:
        return {hit.chunk_id for hit in await search(chunk, users[user], k)}

    await index.clear()
    before = [c for key, c in chunks.items() if key != "eng_int"]
    await index.add(before)
    rebuilt = await index.begin_rebuild()
    await rebuilt.add(before)  # what a rebuild reads from the database
    assert chunks["company_pub"].chunk_id in await ids(chunks["company_pub"], "boss")

    await index.add([chunks["eng_int"]])  # an upload during the rebuild
    await index.delete_file(chunks["b_personal"].file_id)
    await index.update_access(chunks["sales_int"].file_id, chunks["a_personal"].access)
    await index.switch_to(rebuilt)

    assert await index.count() == len(chunks) - 1
    assert chunks["eng_int"].chunk_id in await ids(chunks["eng_int"], "bob")
    assert chunks["b_personal"].chunk_id not in await ids(chunks["b_personal"], "bob")
    assert chunks["sales_int"].chunk_id in await ids(chunks["sales_int"], "alice")
    assert chunks["sales_int"].chunk_id not in await ids(chunks["sales_int"], "boss")
    assert chunks["a_personal"].chunk_id not in await ids(chunks["a_personal"], "bob")

    partial = await index.begin_rebuild()
    await partial.add([chunks["company_pub"]])
    await index.discard(partial)
    assert await index.count() == len(chunks) - 1
    assert chunks["eng_int"].chunk_id in await ids(chunks["eng_int"], "bob")

    await index.clear()  # also once the live index is a rebuilt one
    assert await index.count() == 0
    assert await ids(chunks["eng_int"], "bob") == set()


async def run_keyword_rebuild_scenario(index: KeywordIndex) -> None:
    async def search(chunk: IndexedChunk, scope: AccessScope, k: int) -> list[Hit]:
        return await index.search(chunk.text, scope, k)

    await _run_rebuild_scenario(index, search)


async def run_vector_rebuild_scenario(index: VectorIndex) -> None:
    async def search(chunk: IndexedChunk, scope: AccessScope, k: int) -> list[Hit]:
        assert chunk.vector is not None
        return await index.search(chunk.vector, scope, k)

    await _run_rebuild_scenario(index, search)


# ---- the servers -------------------------------------------------------------------------


def _required(variable: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        pytest.skip(f"{variable} is not set; set it to run against a real server")
    return value


@pytest.fixture
async def elasticsearch_index() -> AsyncIterator[ElasticsearchKeywordIndex]:
    url = _required("COPILOT_TEST_ELASTICSEARCH_URL")
    client = AsyncElasticsearch(
        url,
        api_key=os.environ.get("COPILOT_TEST_ELASTICSEARCH_API_KEY") or None,
        request_timeout=30,
    )
    try:
        await client.info()
    except Exception as error:  # noqa: BLE001 - any failure here means "unreachable"
        await client.close()
        pytest.fail(f"COPILOT_TEST_ELASTICSEARCH_URL={url} is set but unreachable: {error}")
    name = f"copilot-test-{uuid.uuid4().hex[:12]}"
    index = ElasticsearchKeywordIndex(client, name)
    try:
        yield index
    finally:
        cleanup = client.options(ignore_status=404)
        for alias in (name, f"{name}-rebuild"):  # the generations of rebuilds
            targets = await cleanup.indices.get_alias(name=alias)
            for generation in dict(targets.body) if targets.meta.status == 200 else ():
                await cleanup.indices.delete(index=generation)
        await cleanup.indices.delete(index=name)
        await index.close()


@pytest.fixture
async def weaviate_index() -> AsyncIterator[VectorIndex]:
    url = _required("COPILOT_TEST_WEAVIATE_URL")
    collection = f"CopilotTest{uuid.uuid4().hex[:12]}"
    index = WeaviateVectorIndex.from_url(
        url,
        int(os.environ.get("COPILOT_TEST_WEAVIATE_GRPC_PORT", "50051")),
        os.environ.get("COPILOT_TEST_WEAVIATE_API_KEY") or None,
        collection=collection,
        dimension=DIMENSION,
        skip_init_checks=True,  # the init checks would also query PyPI
    )
    client = index._client  # the test owns cleanup of its throwaway collection
    try:
        await client.connect()
        if not await client.is_ready():
            raise RuntimeError("/v1/.well-known/ready is not OK")
    except Exception as error:  # noqa: BLE001 - any failure here means "unreachable"
        await index.close()
        pytest.fail(f"COPILOT_TEST_WEAVIATE_URL={url} is set but unreachable: {error}")
    try:
        yield index
    finally:
        for alias in (collection, f"{collection}_Rebuild"):  # the generations of rebuilds
            target = await client.alias.get(alias_name=alias)
            if target is not None:
                await client.alias.delete(alias_name=alias)
                await client.collections.delete(target.collection)
        await client.collections.delete(collection)
        await index.close()


async def test_elasticsearch_keyword_index(elasticsearch_index: ElasticsearchKeywordIndex) -> None:
    await run_keyword_scenario(elasticsearch_index)


async def test_elasticsearch_analyzer_folds_accents_and_stems(
    elasticsearch_index: ElasticsearchKeywordIndex,
) -> None:
    """Only a real cluster runs the analyzer: 'café running' must match 'cafe runs'."""
    scope = AccessScope("u", None, frozenset({"public"}))
    doc = IndexedChunk(
        chunk_id=f"an-{uuid.uuid4().hex[:8]}",
        file_id="f",
        file_name="Menu.pdf",
        ordinal=0,
        page=1,
        text="The café owner keeps running the kitchens",
        access=ChunkAccess(
            owner_id="x", scope="company", department_id=None, classification="public"
        ),
    )
    await elasticsearch_index.add([doc])
    for query in ("cafe", "CAFÉ", "runs", "kitchen", "owners"):
        hits = await elasticsearch_index.search(query, scope, k=3)
        assert [h.chunk_id for h in hits] == [doc.chunk_id], query
    assert await elasticsearch_index.search("the", scope, k=3) == []  # english stop word


async def test_weaviate_vector_index(weaviate_index: VectorIndex) -> None:
    await run_vector_scenario(weaviate_index, DIMENSION)


async def test_elasticsearch_rebuild(elasticsearch_index: ElasticsearchKeywordIndex) -> None:
    await run_keyword_rebuild_scenario(elasticsearch_index)


async def test_weaviate_rebuild(weaviate_index: VectorIndex) -> None:
    await run_vector_rebuild_scenario(weaviate_index)


# ---- the same scenario where no server is needed: embedded engines and the wire fakes ----


async def test_scenario_on_the_embedded_engines(tmp_path: Path) -> None:
    keyword = EmbeddedKeywordIndex(tmp_path / "keyword")
    vector = EmbeddedVectorIndex(tmp_path / "vector", DIMENSION)
    try:
        await run_keyword_scenario(keyword)
        await run_vector_scenario(vector, DIMENSION)
    finally:
        await keyword.close()
        await vector.close()


@asynccontextmanager
async def wire_fake_indexes() -> AsyncIterator[tuple[KeywordIndex, VectorIndex]]:
    """The production adapters, each on its wire fake (served for the block's duration)."""
    from tests.search import test_elasticsearch_contract as es_fake
    from tests.search import test_weaviate_contract as weaviate_fake

    async with (
        es_fake.serving(es_fake.FakeElasticsearch()) as fake_es,
        weaviate_fake.serving(weaviate_fake.FakeWeaviate.evaluating()) as fake,
    ):
        keyword = ElasticsearchKeywordIndex(
            AsyncElasticsearch(fake_es.url, max_retries=0), "copilot-scenario"
        )
        vector = WeaviateVectorIndex.from_url(
            f"http://127.0.0.1:{fake.http_port}",
            fake.grpc_port,
            collection="CopilotScenario",
            dimension=DIMENSION,
            skip_init_checks=True,
        )
        try:
            yield keyword, vector
        finally:
            await keyword.close()
            await vector.close()


async def test_scenario_on_the_wire_fakes() -> None:
    async with wire_fake_indexes() as (keyword, vector):
        await run_keyword_scenario(keyword)
        await run_vector_scenario(vector, DIMENSION)


async def test_rebuild_scenario_on_the_embedded_engines(tmp_path: Path) -> None:
    keyword = EmbeddedGenerations(tmp_path, "keyword", "keyword-index", EmbeddedKeywordIndex)
    vector = EmbeddedGenerations(
        tmp_path, "vectors", "vector-index", lambda path: EmbeddedVectorIndex(path, DIMENSION)
    )
    try:
        await run_keyword_rebuild_scenario(keyword)
        await run_vector_rebuild_scenario(vector)
    finally:
        await keyword.close()
        await vector.close()


async def test_rebuild_scenario_on_the_wire_fakes() -> None:
    async with wire_fake_indexes() as (keyword, vector):
        await run_keyword_rebuild_scenario(keyword)
        await run_vector_rebuild_scenario(vector)
