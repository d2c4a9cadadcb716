"""Contract tests: the real async Elasticsearch client, driven by our adapter, against a stub.

No Elasticsearch server can be installed here, so a local aiohttp server plays one: it
records every request and answers in the engine's wire format (with the
`X-Elastic-Product: Elasticsearch` header the client insists on). The assertions are on
what the official client actually put on the wire, which is what a real cluster would see.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from copilot.search import rebuild_marker
from copilot.search.base import Hit, IndexedChunk, KeywordIndex, SearchIndexError
from copilot.search.keyword_elasticsearch import (
    HEARTBEAT_META,
    INDEX_MAPPINGS,
    ElasticsearchKeywordIndex,
    access_filter,
    chunk_document,
    search_query,
)
from copilot.search.language import STEMMED_LANGUAGES
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
    """Just enough of the ES REST API for the adapter; `overrides` inject failures.

    It keeps the documents it is sent and answers searches, counts, deletes and access
    updates by evaluating the query DSL it receives (`matches` below), with the engine's
    rules where the adapter depends on them: `term`/`terms` on keyword fields only (an
    array field matches when any of its values does), a strict mapping that refuses
    unknown fields, and update scripts limited to `ctx._source.F = params.P;`.
    `search_hits` and `count_value`, when set, replace the evaluated answers.
    """

    requests: list[Recorded] = field(default_factory=list)
    indices: set[str] = field(default_factory=set)
    aliases: dict[str, set[str]] = field(default_factory=dict)  # alias -> its indexes
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    overrides: dict[tuple[str, str], Responder] = field(default_factory=dict)
    search_hits: list[dict[str, Any]] = field(default_factory=list)
    count_value: int | None = None
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

    def mapping_of(self, index: str) -> dict[str, Any]:
        """The index's mapping; one someone else created is taken to be ours."""
        return self.mappings.get(self.resolve(index)) or INDEX_MAPPINGS

    def docs(self, index: str) -> dict[str, dict[str, Any]]:
        return self.documents.setdefault(self.resolve(index), {})

    def resolve(self, name: str) -> str:
        """An alias's one index (the engine refuses writes to an alias of several)."""
        targets = self.aliases.get(name)
        if targets is None:
            return name
        assert len(targets) == 1, f"alias {name} points to {targets}"
        return next(iter(targets))

    def update_aliases(self, actions: list[dict[str, Any]]) -> tuple[int, Any]:
        """All actions or none, as the engine applies them."""
        aliases = {name: set(targets) for name, targets in self.aliases.items()}
        indices = set(self.indices)
        for action in actions:
            ((kind, spec),) = action.items()
            if spec["index"] not in indices:
                return 404, es_error("index_not_found_exception", spec["index"], 404)
            if kind == "add":
                if spec["alias"] in indices:
                    return 400, es_error("invalid_alias_name_exception", spec["alias"])
                aliases.setdefault(spec["alias"], set()).add(spec["index"])
            elif kind == "remove":
                if spec["index"] not in aliases.get(spec["alias"], set()):
                    return 404, es_error("aliases_not_found_exception", spec["alias"], 404)
                aliases[spec["alias"]].discard(spec["index"])
            elif kind == "remove_index":
                indices.discard(spec["index"])
            else:
                return 400, es_error("illegal_argument_exception", f"no action {kind}")
        self.aliases = {name: targets for name, targets in aliases.items() if targets}
        for gone in self.indices - indices:
            self.mappings.pop(gone, None)
            self.documents.pop(gone, None)
        self.indices = indices
        return 200, {"acknowledged": True, "errors": False}

    def delete_index(self, name: str) -> None:
        self.indices.discard(name)
        self.mappings.pop(name, None)
        self.documents.pop(name, None)
        for targets in self.aliases.values():
            targets.discard(name)
        self.aliases = {alias: targets for alias, targets in self.aliases.items() if targets}

    def answer(self, r: Recorded) -> tuple[int, Any]:
        parts = [p for p in r.path.split("/") if p]
        if r.method == "HEAD" and len(parts) == 1:
            return (200 if parts[0] in self.indices | set(self.aliases) else 404), None
        if r.method == "HEAD" and len(parts) == 2 and parts[0] == "_alias":
            return (200 if parts[1] in self.aliases else 404), None
        if r.method == "GET" and len(parts) == 2 and parts[0] == "_alias":
            if parts[1] not in self.aliases:
                return 404, {"error": f"alias [{parts[1]}] missing", "status": 404}
            return 200, {i: {"aliases": {parts[1]: {}}} for i in self.aliases[parts[1]]}
        if r.method == "POST" and parts == ["_aliases"]:
            return self.update_aliases(r.json()["actions"])
        if r.method == "PUT" and len(parts) == 1 and not parts[0].startswith("_"):
            if parts[0] in self.indices | set(self.aliases):
                return 400, es_error("resource_already_exists_exception", parts[0])
            self.indices.add(parts[0])
            self.mappings[parts[0]] = r.json()["mappings"]
            for alias in r.json().get("aliases", {}):
                self.aliases.setdefault(alias, set()).add(parts[0])
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
        if r.method == "DELETE" and len(parts) == 1:
            if parts[0] not in self.indices:
                return 404, es_error("index_not_found_exception", parts[0], 404)
            self.delete_index(parts[0])
            return 200, {"acknowledged": True}
        if r.method == "PUT" and len(parts) == 2 and parts[1] == "_mapping":
            concrete = self.resolve(parts[0])
            if concrete not in self.indices:
                return 404, es_error("index_not_found_exception", parts[0], 404)
            self.mappings[concrete] = {**self.mapping_of(concrete), **r.json()}  # _meta: replaced
            return 200, {"acknowledged": True}
        if r.method == "GET" and len(parts) == 2 and parts[1] == "_mapping":
            concrete = self.resolve(parts[0])
            if concrete not in self.indices:
                return 404, es_error("index_not_found_exception", parts[0], 404)
            return 200, {concrete: {"mappings": self.mapping_of(concrete)}}
        if r.method in ("POST", "PUT") and parts[-1] == "_bulk":
            return 200, self.bulk(r.ndjson(), require_alias=r.query.get("require_alias") == "true")
        index = parts[0] if parts else ""
        if r.method == "POST" and parts[-1] in ("_delete_by_query", "_update_by_query"):
            names = index.split(",")  # several targets: each that exists, with ignore_unavailable
            known = self.indices | set(self.aliases)
            if len(names) > 1 and r.query.get("ignore_unavailable") != "true":
                missing = [name for name in names if name not in known]
                if missing:
                    return 404, es_error("index_not_found_exception", missing[0], 404)
            if len(names) > 1:
                answers = [
                    self.answer(replace(r, path=f"/{n}/{parts[-1]}")) for n in names if n in known
                ]
                return 200, {
                    **answers[0][1],
                    **{
                        key: sum(answer[1][key] for answer in answers)
                        for key in ("total", "deleted", "updated")
                        if key in answers[0][1]
                    },
                }
        if r.method in ("GET", "POST") and parts[-1] in ("_search", "_count", "_update_by_query"):
            problem = self.unqueryable(index, (r.json() if r.body else {}).get("query", {}))
            if problem:
                return 400, es_error("query_shard_exception", problem)
        if r.method == "POST" and parts[-1] == "_delete_by_query":
            query = r.json()["query"]
            doomed = [i for i, d in self.docs(index).items() if matches(query, d)]
            for doc_id in doomed:
                del self.docs(index)[doc_id]
            return 200, {
                "took": 2,
                "timed_out": False,
                "total": len(doomed),
                "deleted": len(doomed),
                "batches": 1,
                "version_conflicts": 0,
                "noops": 0,
                "failures": [],
            }
        if r.method == "POST" and parts[-1] == "_update_by_query":
            return self.update_by_query(index, r.json())
        if r.method in ("GET", "POST") and parts[-1] == "_search" and "aggs" in r.json():
            return 200, self.aggregate(index, r.json())
        if r.method in ("GET", "POST") and parts[-1] == "_search":
            hits = self.search_hits or self.evaluate_search(index, r.json())
            return 200, {
                "took": 1,
                "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"max_score": None, "hits": hits},
            }
        if r.method in ("GET", "POST") and parts[-1] == "_count":
            query = r.json().get("query", {"match_all": {}})
            counted = sum(matches(query, d) for d in self.docs(index).values())
            count = counted if self.count_value is None else self.count_value
            return 200, {"count": count, "_shards": {"total": 1, "successful": 1}}
        if r.method == "GET" and parts == ["_cluster", "health"]:
            return 200, {
                "cluster_name": "stub-cluster",
                "status": self.health_status,
                "number_of_nodes": 1,
            }
        return 400, es_error("illegal_argument_exception", f"stub has no {r.method} {r.path}")

    def bulk(self, lines: list[Any], *, require_alias: bool = False) -> dict[str, Any]:
        items = []
        for action, source in zip(lines[0::2], lines[1::2], strict=True):
            meta = action["index"]
            if require_alias and meta["_index"] not in self.aliases:
                error = {"type": "index_not_found_exception", "reason": "no such alias"}
                items.append({"index": {**meta, "status": 404, "error": error}})
                continue
            allowed = set(self.mapping_of(meta["_index"])["properties"])
            unknown = sorted(set(source) - allowed)
            if unknown:  # "dynamic": "strict"
                error = {"type": "strict_dynamic_mapping_exception", "reason": str(unknown)}
                items.append({"index": {**meta, "status": 400, "error": error}})
                continue
            self.docs(meta["_index"])[meta["_id"]] = source
            items.append({"index": {**meta, "_version": 1, "result": "created", "status": 201}})
        errors = any("error" in item["index"] for item in items)
        return {"took": 3, "errors": errors, "items": items}

    def unqueryable(self, index: str, query: dict[str, Any]) -> str | None:
        """ES would not run `term`/`terms` on a field that is not a keyword."""
        properties = self.mapping_of(index)["properties"]
        for kind, fld in exact_clauses(query):
            if properties.get(fld, {}).get("type") != "keyword":
                return f"{kind} query on [{fld}], which is not a keyword field"
        return None

    def evaluate_search(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        query = body["query"]
        found = [
            {"_index": index, "_id": doc_id, "_score": score(query, doc), "_source": doc}
            for doc_id, doc in self.docs(index).items()
            if matches(query, doc)
        ]
        found.sort(key=lambda hit: (-hit["_score"], hit["_id"]))
        return found[: body.get("size", 10)]

    def aggregate(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        """A `size: 0` search with `terms` aggregations on keyword fields (doc counts)."""
        assert body.get("size") == 0
        aggregations = {}
        for name, spec in body["aggs"].items():
            fld = spec["terms"]["field"]
            assert self.mapping_of(index)["properties"][fld]["type"] == "keyword"
            counts: dict[str, int] = {}
            for doc in self.docs(index).values():
                for value in _values(doc, fld):
                    counts[value] = counts.get(value, 0) + 1
            buckets = [{"key": k, "doc_count": n} for k, n in sorted(counts.items())]
            aggregations[name] = {"buckets": buckets[: spec["terms"].get("size", 10)]}
        return {"took": 1, "hits": {"hits": []}, "aggregations": aggregations}

    def update_by_query(self, index: str, body: dict[str, Any]) -> tuple[int, Any]:
        script = body["script"]
        assignments = [part.strip() for part in script["source"].split(";") if part.strip()]
        parsed = [re.fullmatch(r"ctx\._source\.(\w+) = params\.(\w+)", a) for a in assignments]
        if script.get("lang", "painless") != "painless" or not all(parsed):
            return 400, es_error("script_exception", f"stub runs no script {script['source']!r}")
        params = script.get("params", {})
        updated = 0
        for doc in self.docs(index).values():
            if matches(body["query"], doc):
                for match in parsed:
                    assert match is not None
                    doc[match.group(1)] = params[match.group(2)]
                updated += 1
        return 200, {
            "took": 1,
            "timed_out": False,
            "total": updated,
            "updated": updated,
            "deleted": 0,
            "batches": 1,
            "version_conflicts": 0,
            "noops": 0,
            "failures": [],
        }


def es_error(kind: str, reason: str, status: int = 400) -> dict[str, Any]:
    """An error body in the engine's format."""
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


@asynccontextmanager
async def serving(fake: FakeElasticsearch) -> AsyncIterator[FakeElasticsearch]:
    """Serve the stub on a free local port (its address in `fake.url`)."""
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
async def fake_es() -> AsyncIterator[FakeElasticsearch]:
    async with serving(FakeElasticsearch()) as fake:
        yield fake


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
    tags: tuple[str, ...] = (),
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
        tags=tags,
    )


DEPT_USER = AccessScope(
    user_id="u-alice", department_id="d-sales", classifications=frozenset({"public", "internal"})
)


async def test_adapter_satisfies_protocol(index: ElasticsearchKeywordIndex) -> None:
    assert isinstance(index, KeywordIndex)
    assert index.name == "elasticsearch"


async def test_creates_index_with_per_language_analysis_once(
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
    analyzers, filters = analysis["analyzer"], analysis["filter"]
    # Each stemmed language: lower-case, its stop words, its stemmer, then ASCII folding
    # (as tantivy's, keyword_embedded.stemming_analyzer), all on the standard tokenizer.
    for code, name in STEMMED_LANGUAGES.items():
        analyzer = analyzers[f"copilot_{code}"]
        assert analyzer["type"] == "custom" and analyzer["tokenizer"] == "standard"
        chain = [n for n in analyzer["filter"] if n != "copilot_english_possessive"]
        assert chain == [
            "lowercase",
            f"copilot_{code}_stop",
            f"copilot_{code}_stemmer",
            "asciifolding",
        ]
        assert filters[f"copilot_{code}_stop"] == {"type": "stop", "stopwords": f"_{name}_"}
        assert filters[f"copilot_{code}_stemmer"] == {"type": "stemmer", "language": name}
    assert filters["copilot_de_stemmer"] == {"type": "stemmer", "language": "german"}
    # The neutral fields: folded, and unfolded so that Vietnamese keeps its diacritics.
    assert analyzers["copilot_folded"]["filter"] == ["lowercase", "asciifolding"]
    assert analyzers["copilot_unfolded"]["filter"] == ["lowercase"]

    props = body["mappings"]["properties"]
    assert props["text"] == {
        "type": "text",
        "analyzer": "copilot_folded",
        "fields": {"unfolded": {"type": "text", "analyzer": "copilot_unfolded"}},
    }
    assert props["text_de"] == {"type": "text", "analyzer": "copilot_de"}
    assert props["text_en"] == {"type": "text", "analyzer": "copilot_en"}
    assert "text_vi" not in props  # no stemmer: matched on the neutral fields
    for name in (
        "chunk_id",
        "file_id",
        "access",
        "owner_id",
        "department_id",
        "scope",
        "classification",
        "language",
        "tags",
    ):
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
        "language": None,  # this chunk's language was not detected: no stemmed field
        "tags": [],
        "access": ["user:u-bob"],
        "owner_id": "u-bob",
        "scope": "personal",
        "department_id": None,
        "classification": "internal",
    }
    assert lines[3]["access"] == ["dept:d-sales:secret"]
    assert lines[1]["access"] == ["company:internal"]


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


async def test_search_sends_bm25_match_with_one_access_tokens_filter(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.search("What does the travel policy say?", DEPT_USER, k=7)

    searches = fake_es.of("POST", "_search") + fake_es.of("GET", "_search")
    languages, search = searches  # the knowledge's languages (cached), then the search
    assert languages.json()["aggs"] == {"languages": {"terms": {"field": "language", "size": 100}}}
    assert search.path == f"/{INDEX}/_search"
    body = search.json()
    assert body["size"] == 7
    assert "post_filter" not in body  # the scope is part of the query, not applied after
    query = body["query"]["bool"]
    # An English question long enough to tell: its stemmed field and both neutral fields
    # without English stop words, the best one scoring.
    question = "What does the travel policy say?"
    assert query["must"] == [
        {
            "dis_max": {
                "queries": [
                    {"match": {"text_en": {"query": question}}},
                    {"match": {"text": {"query": question, "analyzer": "copilot_folded_en"}}},
                    {
                        "match": {
                            "text.unfolded": {"query": question, "analyzer": "copilot_unfolded_en"}
                        }
                    },
                ],
                "tie_breaker": 0.3,
            }
        }
    ]
    # The whole access rule is one `terms` clause on the chunk's tokens.
    assert query["filter"] == [
        {
            "terms": {
                "access": [
                    "company:internal",
                    "company:public",
                    "dept:d-sales:internal",
                    "dept:d-sales:public",
                    "user:u-alice",
                ]
            }
        }
    ]


async def test_a_tag_filter_is_one_more_terms_clause_inside_the_query(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """Tags searched for filter in the engine, beside access (no post_filter, no scoring)."""
    await index.add(
        [
            chunk("hr", tags=("hr", "policies")),
            chunk("fin", tags=("finance",)),
            chunk("untagged"),
            chunk("hr-secret", tags=("hr",), classification="secret"),
        ]
    )
    found = await index.search("budget", DEPT_USER, 10, ("hr", "legal"))
    assert [hit.chunk_id for hit in found] == ["hr"]
    assert {hit.chunk_id for hit in await index.search("budget", DEPT_USER, 10)} == {
        "hr",
        "fin",
        "untagged",
    }
    *_, tagged, plain = fake_es.of("POST", "_search") + fake_es.of("GET", "_search")
    body = tagged.json()
    assert "post_filter" not in body
    assert body["query"]["bool"]["filter"] == [
        access_filter(DEPT_USER),
        {"terms": {"tags": ["hr", "legal"]}},
    ]
    assert plain.json()["query"]["bool"]["filter"] == [access_filter(DEPT_USER)]


async def test_an_access_change_keeps_the_tags(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """update_by_query rewrites the access fields of `_source` only; `tags` stay."""
    await index.add([chunk("hr", tags=("hr",))])
    await index.update_access("file-1", ChunkAccess("u-bob", "personal", None, "internal"))
    stored = fake_es.documents[INDEX]["hr"]
    assert stored["tags"] == ["hr"] and stored["access"] == ["user:u-bob"]


async def test_an_index_from_before_tags_is_refused_until_rebuilt(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """Its strict mapping has no `tags`: new chunks would be refused. Say so instead."""
    old = {**INDEX_MAPPINGS, "properties": dict(INDEX_MAPPINGS["properties"])}
    del old["properties"]["tags"]
    fake_es.indices.add(INDEX)
    fake_es.mappings[INDEX] = old
    with pytest.raises(SearchIndexError, match=r"lacks tags.*copilot reindex --all"):
        await index.search("budget", DEPT_USER, k=3)
    await index.clear()
    assert "tags" in fake_es.mappings[INDEX]["properties"]


async def test_search_without_department_or_classifications_only_allows_own_chunks(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    scope = AccessScope(user_id="u-zed", department_id="d-x", classifications=frozenset())
    await index.search("anything", scope, k=3)
    *_, search = fake_es.of("POST", "_search") + fake_es.of("GET", "_search")
    assert search.json()["query"]["bool"]["filter"] == [{"terms": {"access": ["user:u-zed"]}}]

    no_dept = AccessScope(user_id="u-zed", department_id=None, classifications=frozenset({"p"}))
    assert access_filter(no_dept) == {"terms": {"access": ["company:p", "user:u-zed"]}}


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
                "language": None,
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
                "language": None,
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


async def test_delete_chunks_is_a_refreshing_delete_by_query_on_ids(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.delete_chunks(["c1", "c2"])
    await index.delete_chunks([])  # nothing to send
    (delete,) = fake_es.of("POST", "_delete_by_query")
    assert delete.json() == {"query": {"ids": {"values": ["c1", "c2"]}}}
    assert delete.query["refresh"] == "true"


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


def _values(doc: dict[str, Any], fld: str) -> list[Any]:
    """A field's values: an array holds several, null or missing holds none."""
    value = doc.get(fld)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _words(text: str, analyzer: str | None = None) -> set[str]:
    """Lower-cased words; ASCII-folded by a folding analyzer (`copilot_folded...`)."""
    text = text.lower()
    if analyzer and analyzer.startswith("copilot_folded"):
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        ).replace("đ", "d")
    return set(re.findall(r"\w+", text))


def _match_overlap(spec: dict[str, Any], doc: dict[str, Any]) -> set[str]:
    """Query words found in the field (a multi-field `text.unfolded` reads `text`)."""
    ((fld, options),) = spec.items()
    query = options["query"] if isinstance(options, dict) else options
    analyzer = options.get("analyzer") if isinstance(options, dict) else None
    source_field = fld.split(".")[0]
    text = " ".join(map(str, _values(doc, source_field)))
    return _words(query, analyzer) & _words(text, analyzer)


def matches(clause: dict[str, Any], doc: dict[str, Any]) -> bool:
    """A tiny interpreter for the subset of ES query DSL the adapter sends.

    `match` is approximated by a lower-cased word overlap (no stemming); the exact-match
    clauses follow the engine: a document matches `term`/`terms` if any value of the
    field equals one asked for.
    """
    ((kind, spec),) = clause.items()
    if kind == "match_all":
        return True
    if kind == "term":
        ((fld, value),) = spec.items()
        return value in _values(doc, fld)
    if kind == "terms":
        ((fld, values),) = spec.items()
        return any(value in values for value in _values(doc, fld))
    if kind == "match":
        return bool(_match_overlap(spec, doc))
    if kind == "dis_max":
        return any(matches(c, doc) for c in spec["queries"])
    if kind == "bool":
        musts = spec.get("filter", []) + spec.get("must", [])
        shoulds = spec.get("should", [])
        minimum = spec.get("minimum_should_match", 0 if musts else 1)
        ok_should = sum(matches(c, doc) for c in shoulds) >= minimum if shoulds else True
        ok_not = not any(matches(c, doc) for c in spec.get("must_not", []))
        return all(matches(c, doc) for c in musts) and ok_should and ok_not
    raise AssertionError(f"unexpected clause {kind}")


def score(clause: dict[str, Any], doc: dict[str, Any]) -> float:
    """Words of the `match` clauses found in the document (filters do not score)."""
    ((kind, spec),) = clause.items()
    if kind == "match":
        return float(len(_match_overlap(spec, doc)))
    if kind == "dis_max":
        scores = sorted((score(c, doc) for c in spec["queries"]), reverse=True)
        return scores[0] + spec.get("tie_breaker", 0.0) * sum(scores[1:]) if scores else 0.0
    if kind == "bool":
        return sum(score(c, doc) for c in spec.get("must", []) + spec.get("should", []))
    return 0.0


def exact_clauses(clause: Any) -> list[tuple[str, str]]:
    """Every (term|terms, field) pair anywhere in a query."""
    found: list[tuple[str, str]] = []
    if isinstance(clause, dict):
        for kind, spec in clause.items():
            if kind in ("term", "terms") and isinstance(spec, dict):
                found += [(kind, fld) for fld in spec]
            else:
                found += exact_clauses(spec)
    elif isinstance(clause, list):
        for item in clause:
            found += exact_clauses(item)
    return found


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


async def test_update_access_is_one_update_by_query_setting_params(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("c1", file_id="f1"), chunk("c2", file_id="f1"), chunk("c3")])
    changed = ChunkAccess("u-bob", "department", "d-sales", "secret")
    await index.update_access("f1", changed)

    (update,) = fake_es.of("POST", "_update_by_query")
    assert update.path == f"/{INDEX}/_update_by_query"
    assert update.query["refresh"] == "true"  # searchable once the call returns
    body = update.json()
    assert body["query"] == {"term": {"file_id": "f1"}}
    script = body["script"]
    assert script["lang"] == "painless"
    assert script["params"] == {
        "access": ["dept:d-sales:secret"],
        "owner_id": "u-bob",
        "scope": "department",
        "department_id": "d-sales",
        "classification": "secret",
    }
    assert "d-sales" not in script["source"]  # values travel as params, never in the script
    stored = fake_es.documents[INDEX]
    assert stored["c1"]["access"] == stored["c2"]["access"] == ["dept:d-sales:secret"]
    assert stored["c1"]["text"] == "Quarterly café budget"
    assert stored["c3"]["access"] == ["company:internal"]  # another file is left alone
    assert len(fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")) == 1  # no re-index


async def test_update_access_failures_raise(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    fake_es.overrides[("POST", f"/{INDEX}/_update_by_query")] = lambda r: (
        409,
        es_error("version_conflict_engine_exception", "document changed", 409),
    )
    with pytest.raises(SearchIndexError, match="access update failed"):
        await index.update_access("f1", ChunkAccess("u", "company", None, "public"))


async def test_an_index_from_before_access_tokens_is_refused_until_rebuilt(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """Its strict mapping has no `access`: searches would find nothing. Say so instead."""
    old = {**INDEX_MAPPINGS, "properties": dict(INDEX_MAPPINGS["properties"])}
    del old["properties"]["access"]
    fake_es.indices.add(INDEX)
    fake_es.mappings[INDEX] = old
    for call in (index.search("travel", DEPT_USER, k=3), index.add([chunk("c1")])):
        with pytest.raises(SearchIndexError, match="copilot reindex --all"):
            await call
    await index.clear()  # what `copilot reindex --all` starts with
    assert [r.path for r in fake_es.of("DELETE", INDEX)] == [f"/{INDEX}"]
    assert "access" in fake_es.mappings[INDEX]["properties"]
    await index.add([chunk("c1")])
    assert [h.chunk_id for h in await index.search("budget", DEPT_USER, k=3)] == ["c1"]


def lang_chunk(chunk_id: str, text: str, language: str | None) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=chunk_id,
        file_id=f"f-{chunk_id}",
        file_name=f"{chunk_id}.md",
        ordinal=0,
        page=None,
        text=text,
        access=ChunkAccess("u-owner", "company", None, "internal"),
        language=language,
    )


async def test_chunks_carry_their_language_and_its_stemmed_field(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    german = lang_chunk("de", "Jahresabschluss zum Geschäftsjahr 2020", "de")
    vietnamese = lang_chunk("vi", "Giá phòng khách sạn tối đa", "vi")
    await index.add([german, vietnamese])
    stored = fake_es.documents[INDEX]
    assert stored["de"]["language"] == "de"
    assert stored["de"]["text_de"] == stored["de"]["text"]
    assert stored["vi"]["language"] == "vi"
    assert not any(key.startswith("text_") for key in stored["vi"])  # no stemmer for vi
    hits = await index.search("Geschäftsjahr", DEPT_USER, k=3)
    assert [(h.chunk_id, h.metadata["language"]) for h in hits] == [("de", "de")]


async def test_a_short_question_is_read_in_the_languages_of_the_knowledge(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add(
        [
            lang_chunk("de", "Jahresabschluss zum Geschäftsjahr 2020", "de"),
            lang_chunk("en", "The travel policy limits hotel costs.", "en"),
            lang_chunk("vi", "Giá phòng khách sạn tối đa", "vi"),
        ]
    )
    await index.search("Geschäftsjahr", DEPT_USER, k=3)
    *_, search = fake_es.of("POST", "_search")
    (dis_max,) = search.json()["query"]["bool"]["must"]
    fields = [next(iter(c["match"])) for c in dis_max["dis_max"]["queries"]]
    # Both stemmed languages held (Vietnamese has none), and the neutral fields for each.
    assert fields == ["text_de", "text_en", "text", "text.unfolded", "text", "text.unfolded"]


@pytest.mark.parametrize("question", ["khách sạn", "khach san", "Giá phòng khách sạn?"])
async def test_vietnamese_matches_with_and_without_diacritics(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex, question: str
) -> None:
    await index.add(
        [
            lang_chunk("vi", "Giá phòng khách sạn tối đa", "vi"),
            lang_chunk("en", "The travel policy limits hotel costs.", "en"),
        ]
    )
    assert [h.chunk_id for h in await index.search(question, DEPT_USER, k=3)] == ["vi"]


@pytest.mark.parametrize(
    ("question", "languages"),
    [
        ("What does the travel policy say about hotels?", ["en"]),
        ("die Kosten der Hotels", ["de", "en"]),
        ("Giá phòng khách sạn", ["vi"]),
        ("Giá phòng khách sạn", ["de", "vi"]),
    ],
)
def test_the_same_clauses_as_the_embedded_engine(question: str, languages: list[str]) -> None:
    """Parity: each (field, analysis) the embedded engine scores, in the same order."""
    from copilot.search.keyword_embedded import query_terms

    scope = AccessScope("u", None, frozenset())
    clauses = search_query(question, scope, languages)["bool"]["must"][0]["dis_max"]["queries"]
    es_fields = [next(iter(c["match"])).replace(".", "_") for c in clauses]
    assert es_fields == [field for field, _ in query_terms(question, languages)]


async def test_an_index_from_before_per_language_fields_is_refused_until_rebuilt(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """It has access tokens but one English-analysed `text`: German would go unstemmed."""
    old = {**INDEX_MAPPINGS, "properties": dict(INDEX_MAPPINGS["properties"])}
    old["properties"]["text"] = {"type": "text", "analyzer": "copilot_english"}
    for name in [n for n in old["properties"] if n.startswith("text_") or n == "language"]:
        del old["properties"][name]
    fake_es.indices.add(INDEX)
    fake_es.mappings[INDEX] = old
    for call in (index.search("Geschäftsjahr", DEPT_USER, k=3), index.add([chunk("c1")])):
        with pytest.raises(SearchIndexError, match="copilot reindex --all") as refused:
            await call
        assert "older schema" in str(refused.value) and "text_de" in str(refused.value)
    await index.clear()  # what `copilot reindex --all` starts with
    assert [r.path for r in fake_es.of("DELETE", INDEX)] == [f"/{INDEX}"]
    assert fake_es.mappings[INDEX] == INDEX_MAPPINGS
    await index.add([lang_chunk("de", "Jahresabschluss zum Geschäftsjahr 2020", "de")])
    assert [h.chunk_id for h in await index.search("Geschäftsjahr", DEPT_USER, k=3)] == ["de"]


# --- rebuilds beside the live index, switched by alias -----------------------------------


def _alias_calls(fake: FakeElasticsearch) -> list[list[dict[str, Any]]]:
    return [r.json()["actions"] for r in fake.of("POST", "/_aliases")]


async def _found_ids(index: ElasticsearchKeywordIndex, query: str = "budget") -> set[str]:
    scope = AccessScope("u-x", None, frozenset({"internal"}))
    return {hit.chunk_id for hit in await index.search(query, scope, 10)}


async def test_a_rebuild_fills_a_new_index_and_moves_the_alias_in_one_call(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("old")])  # the first generation: a concrete index named INDEX
    rebuilt = await index.begin_rebuild()
    assert re.fullmatch(rf"{INDEX}-\d{{8}}t\d{{12}}", rebuilt.index)
    (create,) = [r for r in fake_es.of("PUT", rebuilt.index)]
    assert create.json()["aliases"] == {f"{INDEX}-rebuild": {}}
    mappings = create.json()["mappings"]
    assert mappings == {
        **INDEX_MAPPINGS,
        "_meta": {HEARTBEAT_META: mappings["_meta"][HEARTBEAT_META]},
    }
    assert mappings["_meta"][HEARTBEAT_META] == pytest.approx(time.time(), abs=5)

    await rebuilt.add([chunk("old")])  # what the rebuild reads from the database
    assert await _found_ids(index) == {"old"}  # search still answers from the live index
    # Writes meanwhile reach both: an upload through the rebuild's alias (never creating
    # an index), a delete on both indexes in one request.
    fake_es.requests.clear()
    await index.add([chunk("new", file_id="file-2")])
    bulks = fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")
    assert [b.ndjson()[0]["index"]["_index"] for b in bulks] == [INDEX, f"{INDEX}-rebuild"]
    assert bulks[1].query["require_alias"] == "true"
    await index.delete_file("file-9")
    (delete,) = fake_es.of("POST", "_delete_by_query")
    assert delete.path == f"/{INDEX},{INDEX}-rebuild/_delete_by_query"
    assert delete.query["ignore_unavailable"] == "true"

    fake_es.requests.clear()
    await index.switch_to(rebuilt)
    assert _alias_calls(fake_es) == [
        [
            {"remove": {"index": rebuilt.index, "alias": f"{INDEX}-rebuild"}},
            {"remove_index": {"index": INDEX}},
            {"add": {"index": rebuilt.index, "alias": INDEX}},
        ]
    ]
    assert fake_es.aliases == {INDEX: {rebuilt.index}} and fake_es.indices == {rebuilt.index}
    assert await _found_ids(index) == {"old", "new"}

    # The next rebuild moves the alias off the previous generation, then deletes it.
    second = await index.begin_rebuild()
    await second.add([chunk("newest")])
    fake_es.requests.clear()
    await index.switch_to(second)
    assert _alias_calls(fake_es) == [
        [
            {"remove": {"index": second.index, "alias": f"{INDEX}-rebuild"}},
            {"remove": {"index": rebuilt.index, "alias": INDEX}},
            {"add": {"index": second.index, "alias": INDEX}},
        ]
    ]
    assert [r.path for r in fake_es.of("DELETE", rebuilt.index)] == [f"/{rebuilt.index}"]
    assert fake_es.indices == {second.index}
    assert await _found_ids(index) == {"newest"}


async def test_a_discarded_rebuild_leaves_the_live_index(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("old")])
    rebuilt = await index.begin_rebuild()
    await rebuilt.add([chunk("partial")])
    await index.discard(rebuilt)
    assert fake_es.of("DELETE", rebuilt.index) and fake_es.of("POST", "/_aliases") == []
    assert fake_es.indices == {INDEX} and fake_es.aliases == {}
    assert await _found_ids(index) == {"old"}
    fake_es.requests.clear()
    await index.add([chunk("later")])  # no longer sent to a rebuild
    assert len(fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")) == 1


async def test_another_process_writes_to_the_rebuild_and_survives_its_end(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """A second handle (the web app beside the CLI) finds the rebuild's alias on its own;
    a write just after the switch, before it looks again, does not fail."""
    app = ElasticsearchKeywordIndex(AsyncElasticsearch(fake_es.url, max_retries=0), INDEX)
    try:
        await app.add([chunk("before")])  # looks: no rebuild
        rebuilt = await index.begin_rebuild()
        app._rebuild.forget()  # as a second later
        await app.add([chunk("during", file_id="file-2")])
        assert set(fake_es.docs(rebuilt.index)) == {"during"}
        await index.switch_to(rebuilt)
        await app.add([chunk("after", file_id="file-3")])  # its knowledge is stale here
        assert set(fake_es.docs(INDEX)) == {"during", "after"}  # INDEX is the alias now
        assert await _found_ids(app) == {"during", "after"}
    finally:
        await app.close()


def _age_heartbeat(fake: FakeElasticsearch, index: str, seconds: float) -> None:
    """What a rebuild killed `seconds` ago leaves: its index's heartbeat that old."""
    mapping = fake.mapping_of(index)
    fake.mappings[index] = {**mapping, "_meta": {HEARTBEAT_META: time.time() - seconds}}


async def test_a_killed_rebuilds_marker_is_ignored_then_removed_at_the_next_start(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("old")])
    rebuilt = await index.begin_rebuild()
    await index._rebuild.stop_beating()  # killed: nothing beats any more
    _age_heartbeat(fake_es, rebuilt.index, rebuild_marker.STALE_SECONDS + 1)

    restarted = ElasticsearchKeywordIndex(AsyncElasticsearch(fake_es.url, max_retries=0), INDEX)
    try:
        await restarted.add([chunk("after", file_id="file-2")])  # the first use: cleans up
        assert [r.path for r in fake_es.of("DELETE", rebuilt.index)] == [f"/{rebuilt.index}"]
        assert fake_es.indices == {INDEX} and fake_es.aliases == {}
        bulks = fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")
        assert [b.ndjson()[0]["index"]["_index"] for b in bulks][-1] == INDEX  # not doubled
        assert await _found_ids(restarted) == {"old", "after"}
    finally:
        await restarted.close()


async def test_a_stale_marker_gets_no_writes_and_the_next_rebuild_replaces_it(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    await index.add([chunk("old")])
    killed = await index.begin_rebuild()
    await index._rebuild.stop_beating()
    _age_heartbeat(fake_es, killed.index, rebuild_marker.STALE_SECONDS + 1)
    index._rebuild.forget()
    fake_es.requests.clear()
    await index.add([chunk("during", file_id="file-2")])
    assert len(fake_es.of("PUT", "_bulk") + fake_es.of("POST", "_bulk")) == 1
    assert set(fake_es.docs(killed.index)) == set()

    rebuilt = await index.begin_rebuild()
    assert killed.index not in fake_es.indices
    assert fake_es.aliases == {f"{INDEX}-rebuild": {rebuilt.index}}
    await index.discard(rebuilt)


async def test_a_live_rebuild_is_neither_removed_nor_started_twice(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex
) -> None:
    """Another process's rebuild, beating: a start leaves it, a second rebuild is refused."""
    await index.add([chunk("old")])
    running = await index.begin_rebuild()
    other = ElasticsearchKeywordIndex(AsyncElasticsearch(fake_es.url, max_retries=0), INDEX)
    try:
        await other.add([chunk("during", file_id="file-2")])
        assert running.index in fake_es.indices
        assert set(fake_es.docs(running.index)) == {"during"}  # it still gets the writes
        with pytest.raises(SearchIndexError, match="another rebuild is running"):
            await other.begin_rebuild()
    finally:
        await other.close()
    await index.discard(running)


async def test_a_running_rebuild_rewrites_its_heartbeat_until_it_switches(
    fake_es: FakeElasticsearch, index: ElasticsearchKeywordIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild_marker, "HEARTBEAT_SECONDS", 0.05)
    await index.add([chunk("old")])
    rebuilt = await index.begin_rebuild()
    _age_heartbeat(fake_es, rebuilt.index, 60)
    await asyncio.sleep(0.3)
    beats = fake_es.of("PUT", f"{rebuilt.index}/_mapping")
    assert len(beats) >= 2
    assert fake_es.mapping_of(rebuilt.index)["_meta"][HEARTBEAT_META] == pytest.approx(
        time.time(), abs=5
    )
    await index.switch_to(rebuilt)
    after = len(fake_es.of("PUT", f"{rebuilt.index}/_mapping"))
    await asyncio.sleep(0.2)
    assert len(fake_es.of("PUT", f"{rebuilt.index}/_mapping")) == after  # stopped
