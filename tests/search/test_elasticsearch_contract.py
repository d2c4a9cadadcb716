"""Contract tests: the real async Elasticsearch client, driven by our adapter, against a stub.

No Elasticsearch server can be installed here, so a local aiohttp server plays one: it
records every request and answers in the engine's wire format (with the
`X-Elastic-Product: Elasticsearch` header the client insists on). The assertions are on
what the official client actually put on the wire, which is what a real cluster would see.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from copilot.search.base import Hit, IndexedChunk, KeywordIndex, SearchIndexError
from copilot.search.keyword_elasticsearch import (
    ElasticsearchKeywordIndex,
    access_filter,
    chunk_document,
)
from copilot.search.scope import AccessScope, ChunkAccess

INDEX = "copilot-test"
ES_JSON = "application/vnd.elasticsearch+json;compatible-with=8"

Responder = Callable[["Recorded"], tuple[int, Any]]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class FakeElasticsearch:
    """Just enough of the ES REST API for the adapter; `overrides` inject failures."""

    requests: list[Recorded] = field(default_factory=list)
    indices: set[str] = field(default_factory=set)
    overrides: dict[tuple[str, str], Responder] = field(default_factory=dict)
    search_hits: list[dict[str, Any]] = field(default_factory=list)
    count_value: int = 0
    health_status: str = "yellow"
    product_header: bool = True
    url: str = ""

    def of(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(recorded)
        responder = self.overrides.get((request.method, request.path))
        status, payload = responder(recorded) if responder else self.answer(recorded)
        headers = {"X-Elastic-Product": "Elasticsearch"} if self.product_header else {}
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers, content_type="application/json")
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            headers={**headers, "Content-Type": ES_JSON},
        )

    def answer(self, r: Recorded) -> tuple[int, Any]:
        parts = [p for p in r.path.split("/") if p]
        if r.method == "HEAD" and len(parts) == 1:
            return (200 if parts[0] in self.indices else 404), None
        if r.method == "PUT" and len(parts) == 1 and not parts[0].startswith("_"):
            self.indices.add(parts[0])
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
        if r.method in ("POST", "PUT") and parts[-1] == "_bulk":
            lines = r.ndjson()
            items = [
                {
                    "index": {
                        "_index": action["index"]["_index"],
                        "_id": action["index"]["_id"],
                        "_version": 1,
                        "result": "created",
                        "status": 201,
                    }
                }
                for action in lines[0::2]
            ]
            return 200, {"took": 3, "errors": False, "items": items}
        if r.method == "POST" and parts[-1] == "_delete_by_query":
            return 200, {
                "took": 2,
                "timed_out": False,
                "total": 2,
                "deleted": 2,
                "batches": 1,
                "version_conflicts": 0,
                "noops": 0,
                "failures": [],
            }
        if r.method in ("GET", "POST") and parts[-1] == "_search":
            return 200, {
                "took": 1,
                "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"max_score": None, "hits": self.search_hits},
            }
        if r.method in ("GET", "POST") and parts[-1] == "_count":
            return 200, {"count": self.count_value, "_shards": {"total": 1, "successful": 1}}
        if r.method == "GET" and parts == ["_cluster", "health"]:
            return 200, {
                "cluster_name": "stub-cluster",
                "status": self.health_status,
                "number_of_nodes": 1,
            }
        return 400, es_error("illegal_argument_exception", f"stub has no {r.method} {r.path}")


def es_error(kind: str, reason: str, status: int = 400) -> dict[str, Any]:
    """An error body in the engine's format."""
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


@pytest.fixture
async def fake_es() -> AsyncIterator[FakeElasticsearch]:
    fake = FakeElasticsearch()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def index(fake_es: FakeElasticsearch) -> AsyncIterator[ElasticsearchKeywordIndex]:
    idx = ElasticsearchKeywordIndex(AsyncElasticsearch(fake_es.url, max_retries=0), INDEX)
    try:
        yield idx
    finally:
        await idx.close()


def chunk(
    chunk_id: str,
    *,
    file_id: str = "file-1",
    text: str = "Quarterly café budget",
    owner: str = "u-owner",
    scope: str = "company",
    department: str | None = None,
    classification: str = "internal",
    page: int | None = 3,
    ordinal: int = 0,
) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=chunk_id,
        file_id=file_id,
        file_name="Budget 2025.pdf",
        ordinal=ordinal,
        page=page,
        text=text,
        access=ChunkAccess(
            owner_id=owner, scope=scope, department_id=department, classification=classification
        ),
    )


DEPT_USER = AccessScope(
    user_id="u-alice", department_id="d-sales", classifications=frozenset({"public", "internal"})
)


async def test_adapter_satisfies_protocol(index: ElasticsearchKeywordIndex) -> None:
    assert isinstance(index, KeywordIndex)
    assert index.name == "elasticsearch"


async def test_creates_index_with_english_folding_mapping_once(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("c1")])
    await index.add([chunk("c2")])

    assert [r.path for r in fake_es.of("HEAD", INDEX)] == [f"/{INDEX}"]
    (create,) = fake_es.of("PUT", INDEX)
    assert create.path == f"/{INDEX}"
    # The client speaks the compatibility media type; the stub accepted it.
    assert "compatible-with=8" in create.headers["accept"]
    assert "application/vnd.elasticsearch+json" in create.headers["content-type"]

    body = create.json()
    analysis = body["settings"]["analysis"]
    analyzer = analysis["analyzer"]["copilot_english"]
    assert analyzer["type"] == "custom"
    assert analyzer["tokenizer"] == "standard"
    filters = analyzer["filter"]
    assert filters.index("lowercase") < filters.index("asciifolding")
    named = {name: analysis["filter"][name] for name in filters if name in analysis["filter"]}
    assert {"type": "stop", "stopwords": "_english_"} in named.values()
    assert {"type": "stemmer", "language": "english"} in named.values()
    # Stop words are removed before stemming, as in the built-in english analyzer.
    stop = next(n for n, f in named.items() if f.get("type") == "stop")
    stem = next(n for n, f in named.items() if f == {"type": "stemmer", "language": "english"})
    assert filters.index(stop) < filters.index(stem)

    props = body["mappings"]["properties"]
    assert props["text"] == {"type": "text", "analyzer": "copilot_english"}
    for name in ("chunk_id", "file_id", "owner_id", "department_id", "scope", "classification"):
        assert props[name] == {"type": "keyword"}, name
    assert props["file_name"]["type"] == "text"
    assert props["file_name"]["fields"]["keyword"]["type"] == "keyword"
    assert props["page"] == {"type": "integer"}
    assert props["ordinal"] == {"type": "integer"}


async def test_existing_index_is_not_recreated(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.indices.add(INDEX)
    await index.count()
    assert fake_es.of("PUT", INDEX) == []


async def test_concurrent_creation_by_someone_else_is_tolerated(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.overrides[("PUT", f"/{INDEX}")] = lambda r: (
        400,
        es_error("resource_already_exists_exception", f"index [{INDEX}] already exists"),
    )
    fake_es.count_value = 0
    assert await index.count() == 0


async def test_bulk_body_uses_chunk_id_and_waits_for_refresh(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    chunks = [
        chunk("c1", text="Crème brûlée recipe", page=None),
        chunk("c2", scope="department", department="d-sales", classification="secret"),
        chunk("c3", scope="personal", owner="u-bob", ordinal=7),
    ]
    await index.add(chunks)

    (bulk,) = fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")
    assert bulk.query.get("refresh") == "wait_for"
    assert "application/vnd.elasticsearch+x-ndjson" in bulk.headers["content-type"]
    assert bulk.body.endswith(b"\n")
    lines = bulk.ndjson()
    assert len(lines) == 2 * len(chunks)
    for c, action, source in zip(chunks, lines[0::2], lines[1::2], strict=True):
        assert action == {"index": {"_index": INDEX, "_id": c.chunk_id}}
        assert source == chunk_document(c)
    assert lines[1]["page"] is None
    assert lines[3]["department_id"] == "d-sales"
    assert lines[5] == {
        "chunk_id": "c3",
        "file_id": "file-1",
        "file_name": "Budget 2025.pdf",
        "page": 3,
        "ordinal": 7,
        "text": "Quarterly café budget",
        "owner_id": "u-bob",
        "scope": "personal",
        "department_id": None,
        "classification": "internal",
    }


async def test_empty_add_sends_nothing(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([])
    assert fake_es.requests == []


async def test_bulk_item_failure_raises(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    def reject(r: Recorded) -> tuple[int, Any]:
        action = r.ndjson()[0]["index"]
        item = {
            "_index": action["_index"],
            "_id": action["_id"],
            "status": 400,
            "error": {"type": "document_parsing_exception", "reason": "bad field"},
        }
        return 200, {"took": 1, "errors": True, "items": [{"index": item}]}

    fake_es.overrides[("PUT", "/_bulk")] = reject
    fake_es.overrides[("POST", "/_bulk")] = reject
    with pytest.raises(SearchIndexError) as info:
        await index.add([chunk("c1")])
    assert info.value.index == "elasticsearch"
    assert "document_parsing_exception" in str(info.value)


async def test_search_sends_bm25_match_with_department_scope_filter(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.search("travel policy", DEPT_USER, k=7)

    searches = fake_es.of("POST", "_search") + fake_es.of("GET", "_search")
    (search,) = searches
    assert search.path == f"/{INDEX}/_search"
    body = search.json()
    assert body["size"] == 7
    assert "post_filter" not in body  # the scope is part of the query, not applied after
    query = body["query"]["bool"]
    assert query["must"] == [{"match": {"text": {"query": "travel policy"}}}]
    (scope_filter,) = query["filter"]
    assert scope_filter == {
        "bool": {
            "minimum_should_match": 1,
            "should": [
                {
                    "bool": {
                        "filter": [
                            {"term": {"scope": "personal"}},
                            {"term": {"owner_id": "u-alice"}},
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"term": {"scope": "company"}},
                            {"terms": {"classification": ["internal", "public"]}},
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"term": {"scope": "department"}},
                            {"term": {"department_id": "d-sales"}},
                            {"terms": {"classification": ["internal", "public"]}},
                        ]
                    }
                },
            ],
        }
    }


async def test_search_without_department_or_classifications_only_allows_own_chunks(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    scope = AccessScope(user_id="u-zed", department_id="d-x", classifications=frozenset())
    await index.search("anything", scope, k=3)
    (search,) = fake_es.of("POST", "_search") + fake_es.of("GET", "_search")
    (scope_filter,) = search.json()["query"]["bool"]["filter"]
    assert scope_filter["bool"]["should"] == [
        {"bool": {"filter": [{"term": {"scope": "personal"}}, {"term": {"owner_id": "u-zed"}}]}}
    ]

    no_dept = AccessScope(user_id="u-zed", department_id=None, classifications=frozenset({"p"}))
    clauses = access_filter(no_dept)["bool"]["should"]
    assert [c["bool"]["filter"][0]["term"]["scope"] for c in clauses] == ["personal", "company"]


async def test_search_maps_engine_hits(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.search_hits = [
        {
            "_index": INDEX,
            "_id": "c9",
            "_score": 7.25,
            "_source": {
                "chunk_id": "c9",
                "file_id": "f9",
                "file_name": "Policy.docx",
                "page": None,
                "ordinal": 4,
                "text": "Travel must be approved.",
                "owner_id": "u-hr",
                "scope": "department",
                "department_id": "d-sales",
                "classification": "internal",
            },
        },
        {
            "_index": INDEX,
            "_id": "c1",
            "_score": 1.5,
            "_source": {
                "chunk_id": "c1",
                "file_id": "f1",
                "file_name": "Handbook.pdf",
                "page": 12,
                "ordinal": 0,
                "text": "Travel is fun.",
                "owner_id": "u-ceo",
                "scope": "company",
                "department_id": None,
                "classification": "public",
            },
        },
    ]
    hits = await index.search("travel", DEPT_USER, k=2)
    assert hits == [
        Hit(
            chunk_id="c9",
            score=7.25,
            file_id="f9",
            file_name="Policy.docx",
            page=None,
            ordinal=4,
            text="Travel must be approved.",
            metadata={
                "engine": "elasticsearch",
                "owner_id": "u-hr",
                "scope": "department",
                "department_id": "d-sales",
                "classification": "internal",
            },
        ),
        Hit(
            chunk_id="c1",
            score=1.5,
            file_id="f1",
            file_name="Handbook.pdf",
            page=12,
            ordinal=0,
            text="Travel is fun.",
            metadata={
                "engine": "elasticsearch",
                "owner_id": "u-ceo",
                "scope": "company",
                "department_id": None,
                "classification": "public",
            },
        ),
    ]


async def test_blank_query_or_zero_k_does_not_hit_the_engine(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    assert await index.search("   ", DEPT_USER, k=5) == []
    assert await index.search("travel", DEPT_USER, k=0) == []
    assert fake_es.of("POST", "_search") == []


async def test_delete_file_is_a_refreshing_delete_by_query_on_file_id(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.delete_file("file-42")
    (delete,) = fake_es.of("POST", "_delete_by_query")
    assert delete.path == f"/{INDEX}/_delete_by_query"
    assert delete.json() == {"query": {"term": {"file_id": "file-42"}}}
    assert delete.query["refresh"] == "true"
    assert delete.query["conflicts"] == "proceed"


async def test_clear_deletes_everything_but_keeps_the_index(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.clear()
    (delete,) = fake_es.of("POST", "_delete_by_query")
    assert delete.json() == {"query": {"match_all": {}}}
    assert fake_es.of("DELETE", INDEX) == []


async def test_delete_failures_raise(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.overrides[("POST", f"/{INDEX}/_delete_by_query")] = lambda r: (
        200,
        {"deleted": 0, "failures": [{"cause": {"type": "x"}}]},
    )
    with pytest.raises(SearchIndexError, match="elasticsearch"):
        await index.delete_file("f1")


async def test_count_whole_index_and_per_file(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.count_value = 12
    assert await index.count() == 12
    assert await index.count("file-7") == 12
    first, second = fake_es.of("POST", "_count") + fake_es.of("GET", "_count")
    assert first.json() == {"query": {"match_all": {}}}
    assert second.json() == {"query": {"term": {"file_id": "file-7"}}}


async def test_health_reports_cluster_status_and_latency(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    health = await index.health()
    assert health.ok
    assert "yellow" in health.detail
    assert health.latency_ms >= 0
    fake_es.health_status = "red"
    assert not (await index.health()).ok


async def test_server_error_becomes_search_index_error(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.indices.add(INDEX)
    fake_es.overrides[("POST", f"/{INDEX}/_search")] = lambda r: (
        500,
        es_error("search_phase_execution_exception", "all shards failed", 500),
    )
    with pytest.raises(SearchIndexError) as info:
        await index.search("travel", DEPT_USER, k=3)
    assert info.value.index == "elasticsearch"
    assert "500" in str(info.value)
    assert "search_phase_execution_exception" in str(info.value)


async def test_connection_refused_becomes_search_index_error() -> None:
    with socket.socket() as sock:  # grab a free port, then close it: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    idx = ElasticsearchKeywordIndex(
        AsyncElasticsearch(f"http://127.0.0.1:{port}", max_retries=0), INDEX
    )
    try:
        with pytest.raises(SearchIndexError) as info:
            await idx.search("travel", DEPT_USER, k=3)
        assert info.value.index == "elasticsearch"
        health = await idx.health()
        assert not health.ok
    finally:
        await idx.close()


async def test_server_that_is_not_elasticsearch_is_refused(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.product_header = False
    with pytest.raises(SearchIndexError, match="elasticsearch"):
        await index.count()


def matches(clause: dict[str, Any], doc: dict[str, Any]) -> bool:
    """A tiny interpreter for the subset of ES query DSL the access filter uses."""
    ((kind, spec),) = clause.items()
    if kind == "term":
        ((fld, value),) = spec.items()
        return doc.get(fld) == value
    if kind == "terms":
        ((fld, values),) = spec.items()
        return doc.get(fld) in values
    if kind == "bool":
        musts = spec.get("filter", []) + spec.get("must", [])
        shoulds = spec.get("should", [])
        minimum = spec.get("minimum_should_match", 0 if musts else 1)
        ok_should = sum(matches(c, doc) for c in shoulds) >= minimum if shoulds else True
        return all(matches(c, doc) for c in musts) and ok_should
    raise AssertionError(f"unexpected clause {kind}")


def test_access_filter_agrees_with_scope_rule_on_random_chunks() -> None:
    rng = random.Random(20240611)
    users, departments = ["u1", "u2", "u3"], ["d1", "d2", None]
    levels = ["public", "internal", "confidential", "secret"]
    checked = 0
    for _ in range(60):
        scope = AccessScope(
            user_id=rng.choice(users),
            department_id=rng.choice(departments),
            classifications=frozenset(rng.sample(levels, rng.randint(0, len(levels)))),
        )
        es_filter = access_filter(scope)
        for _ in range(80):
            access = ChunkAccess(
                owner_id=rng.choice(users),
                scope=rng.choice(["personal", "company", "department"]),
                department_id=rng.choice(departments),
                classification=rng.choice(levels),
            )
            doc = chunk_document(chunk("c", **_access_kwargs(access)))
            assert matches(es_filter, doc) == scope.allows(access), (scope, access)
            checked += 1
    assert checked == 4800


def _access_kwargs(access: ChunkAccess) -> dict[str, Any]:
    return {
        "owner": access.owner_id,
        "scope": access.scope,
        "department": access.department_id,
        "classification": access.classification,
    }
