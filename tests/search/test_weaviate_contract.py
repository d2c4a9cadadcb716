"""Contract tests: the real Weaviate v4 async client, driven by our adapter, against stubs.

No Weaviate server can be installed here. The client talks REST (meta, schema) and gRPC
(batch insert, search, delete, aggregate), so the test runs both: an aiohttp server for
`/v1/...` and a `grpc.aio` server implementing the `weaviate.v1.Weaviate` service with the
client's own protobuf classes. Both record what arrives; assertions are on the wire.

The access filter is also checked semantically: a small interpreter evaluates the filter
tree (both the Python `Filter` objects and the protobuf the client sends) against
`AccessScope.allows` on randomized chunks.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.protobuf import json_format
from weaviate.collections.classes.filters import _FilterAnd, _FilterOr, _Filters, _FilterValue
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from copilot.search import rebuild_marker
from copilot.search.base import Hit, IndexedChunk, SearchIndexError, VectorIndex
from copilot.search.scope import AccessScope, ChunkAccess
from copilot.search.vector_weaviate import (
    CHUNK_NAMESPACE,
    HEARTBEAT_DESCRIPTION,
    INSERT_BATCH_SIZE,
    WeaviateVectorIndex,
    access_filter,
    chunk_properties,
    object_uuid,
)

COLLECTION = "CopilotTest"
DIM = 4
SERVER_VERSION = "1.32.0"
ID_LIKE = ("chunk_id", "file_id", "owner_id", "department_id", "scope", "classification")


@dataclass
class StoredObject:
    properties: dict[str, Any]
    vector: list[float]


@dataclass
class FakeWeaviate(weaviate_pb2_grpc.WeaviateServicer):
    """REST + gRPC stand-in recording every request; fields steer the answers.

    It keeps the objects it is sent (`objects`, by collection and uuid) and answers
    searches, fetches, deletes and counts by evaluating the protobuf filter it receives
    (`evaluate` below) with Weaviate's semantics: a filter on a property the schema does
    not have is an error, `ContainsAny` on a `text[]` property matches when any element is
    one of the values. The canned `search_results`, `delete_rounds` and `objects_count`,
    when set, replace the evaluated answers.
    """

    rest: list[tuple[str, str, Any]] = field(default_factory=list)
    grpc_calls: list[tuple[str, Any]] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> collection
    objects: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    search_results: list[search_get_pb2.SearchResult] = field(default_factory=list)
    batch_errors: list[batch_pb2.BatchObjectsReply.BatchError] = field(default_factory=list)
    delete_rounds: list[int] | None = field(default_factory=lambda: [2, 0])
    objects_count: int | None = 0
    fail_grpc: bool = False
    http_port: int = 0
    grpc_port: int = 0

    @classmethod
    def evaluating(cls) -> FakeWeaviate:
        """A fake that answers only from the objects it stores (no canned answers)."""
        return cls(delete_rounds=None, objects_count=None)

    def stored(self, collection: str) -> dict[str, StoredObject]:
        return self.objects.setdefault(self.aliases.get(collection, collection), {})

    def matching(self, request: Any) -> list[tuple[str, StoredObject]]:
        collection = self.aliases.get(request.collection, request.collection)
        properties = {p["name"] for p in self.schemas.get(collection, {}).get("properties", [])}
        if not request.HasField("filters"):
            return list(self.stored(collection).items())
        tree = proto_filter_tree(request.filters)
        for target in filter_targets(tree):
            if target not in properties:
                raise ValueError(f"no such prop with name '{target}' found in class")
        return [(i, o) for i, o in self.stored(collection).items() if evaluate(tree, o.properties)]

    def calls(self, method: str) -> list[Any]:
        return [request for name, request in self.grpc_calls if name == method]

    # ---- REST -------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.rest.append((request.method, request.path, body))
        path = request.path
        if path == "/v1/meta":
            return web.json_response({"version": SERVER_VERSION, "modules": {}})
        if path == "/v1/.well-known/ready":
            return web.Response(status=200)
        if path == "/v1/.well-known/openid-configuration":
            return web.Response(status=404)
        if path.startswith("/v1/aliases"):
            return self.handle_alias(request.method, path.removeprefix("/v1/aliases"), body)
        if path == "/v1/schema" and request.method == "POST":
            assert body is not None
            self.schemas[body["class"]] = body
            return web.json_response(body)
        if path.startswith("/v1/schema/"):
            name = path.removeprefix("/v1/schema/")
            if request.method == "GET":
                if name in self.schemas:
                    return web.json_response(with_server_defaults(self.schemas[name]))
                return web.Response(status=404)
            if request.method == "PUT" and name in self.schemas:
                assert body is not None and body["class"] == name
                self.schemas[name] = {**self.schemas[name], "description": body.get("description")}
                return web.json_response(with_server_defaults(self.schemas[name]))
            if request.method == "DELETE":
                self.schemas.pop(name, None)
                self.objects.pop(name, None)
                return web.Response(status=200)
        return web.json_response({"error": [{"message": f"stub: {path}"}]}, status=422)

    def handle_alias(self, method: str, name: str, body: Any) -> web.StreamResponse:
        """Aliases (Weaviate >= 1.32): one collection each; names shared with no collection."""
        name = name.removeprefix("/")
        if method == "POST" and not name:
            if body["alias"] in self.aliases or body["alias"] in self.schemas:
                return web.json_response({"error": [{"message": "exists"}]}, status=422)
            if body["class"] not in self.schemas:
                return web.json_response({"error": [{"message": "no class"}]}, status=422)
            self.aliases[body["alias"]] = body["class"]
            return web.json_response(body)
        if name not in self.aliases:
            return web.Response(status=404)
        if method == "GET":
            return web.json_response({"alias": name, "class": self.aliases[name]})
        if method == "PUT":
            self.aliases[name] = body["class"]
            return web.json_response({"alias": name, "class": body["class"]})
        if method == "DELETE":
            del self.aliases[name]
            return web.Response(status=204)
        return web.Response(status=405)

    # ---- gRPC -------------------------------------------------------------------------
    async def _maybe_fail(self, context: grpc.aio.ServicerContext) -> None:
        if self.fail_grpc:
            # INTERNAL, not UNAVAILABLE: the client retries UNAVAILABLE with long backoff.
            await context.abort(grpc.StatusCode.INTERNAL, "stub: shard failure")

    async def Search(  # noqa: N802 (gRPC method name)
        self, request: search_get_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> search_get_pb2.SearchReply:
        self.grpc_calls.append(("Search", request))
        await self._maybe_fail(context)
        if self.search_results:
            return search_get_pb2.SearchReply(took=0.001, results=self.search_results)
        try:
            found = self.matching(request)
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        query: list[float] | None = None
        if request.HasField("near_vector"):
            query = _near_vector_target_and_values(request.near_vector)[1]
        ranked = [(cosine_distance(query, o.vector) if query else None, i, o) for i, o in found]
        ranked.sort(key=lambda item: (item[0] or 0.0, item[1]))
        limit = request.limit or 10
        page = ranked[request.offset : request.offset + limit]
        return search_get_pb2.SearchReply(
            took=0.001, results=[search_result(request, d, i, o) for d, i, o in page]
        )

    async def BatchObjects(  # noqa: N802
        self, request: batch_pb2.BatchObjectsRequest, context: grpc.aio.ServicerContext
    ) -> batch_pb2.BatchObjectsReply:
        self.grpc_calls.append(("BatchObjects", request))
        await self._maybe_fail(context)
        if not self.batch_errors:
            for obj in request.objects:  # a known uuid is overwritten, as on the server
                vectors = {v.name: floats(v.vector_bytes) for v in obj.vectors}
                self.stored(obj.collection)[obj.uuid] = StoredObject(
                    batch_properties(obj.properties), vectors.get("default", [])
                )
        return batch_pb2.BatchObjectsReply(took=0.001, errors=self.batch_errors)

    async def BatchDelete(  # noqa: N802
        self, request: batch_delete_pb2.BatchDeleteRequest, context: grpc.aio.ServicerContext
    ) -> batch_delete_pb2.BatchDeleteReply:
        self.grpc_calls.append(("BatchDelete", request))
        await self._maybe_fail(context)
        if self.delete_rounds is not None:
            n = self.delete_rounds.pop(0) if self.delete_rounds else 0
        else:
            doomed = self.matching(request)
            for object_id, _ in doomed:
                del self.stored(request.collection)[object_id]
            n = len(doomed)
        return batch_delete_pb2.BatchDeleteReply(took=0.001, matches=n, successful=n, failed=0)

    async def Aggregate(  # noqa: N802
        self, request: aggregate_pb2.AggregateRequest, context: grpc.aio.ServicerContext
    ) -> aggregate_pb2.AggregateReply:
        self.grpc_calls.append(("Aggregate", request))
        await self._maybe_fail(context)
        count = self.objects_count
        if count is None:
            count = len(self.matching(request))
        return aggregate_pb2.AggregateReply(
            took=0.001,
            single_result=aggregate_pb2.AggregateReply.Single(objects_count=count),
        )


def with_server_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """A class as the server returns it: the defaults it fills in for what was not sent."""
    properties = []
    for prop in schema.get("properties", []):
        text = prop["dataType"][0] in ("text", "text[]")
        properties.append(
            {
                "indexFilterable": True,
                "indexSearchable": text,
                **({"tokenization": "word"} if text else {}),
                **prop,
            }
        )
    vectors = {
        name: {
            **named,
            "vectorIndexConfig": {**HNSW_DEFAULTS, **named.get("vectorIndexConfig", {})},
        }
        for name, named in schema.get("vectorConfig", {}).items()
    }
    return {"vectorizer": "none", **schema, "properties": properties, "vectorConfig": vectors}


# What Weaviate 1.32 reports for an HNSW index created without settings.
HNSW_DEFAULTS: dict[str, Any] = {
    "distance": "cosine",
    "cleanupIntervalSeconds": 300,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "ef": -1,
    "efConstruction": 128,
    "flatSearchCutoff": 40000,
    "maxConnections": 32,
    "skip": False,
    "vectorCacheMaxObjects": 1000000000000,
}


def batch_properties(properties: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    """The properties of a batched object as the server stores them."""
    stored: dict[str, Any] = json_format.MessageToDict(properties.non_ref_properties)
    for array in properties.text_array_properties:
        stored[array.prop_name] = list(array.values)
    for name in properties.empty_list_props:
        stored[name] = []
    return stored


def cosine_distance(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - sum(x * y for x, y in zip(a, b, strict=True)) / norm


def search_result(
    request: search_get_pb2.SearchRequest, distance: float | None, object_id: str, obj: Any
) -> search_get_pb2.SearchResult:
    """One object as the server returns it: the asked-for properties and metadata."""
    fields = {}
    for name in request.properties.non_ref_properties:
        value = obj.properties.get(name)
        if isinstance(value, bool) or value is None:
            fields[name] = properties_pb2.Value(null_value=0)
        elif isinstance(value, int | float):
            fields[name] = properties_pb2.Value(int_value=int(value))
        elif isinstance(value, list):
            fields[name] = properties_pb2.Value(
                list_value=properties_pb2.ListValue(
                    text_values=properties_pb2.TextValues(values=value)
                )
            )
        else:
            fields[name] = properties_pb2.Value(text_value=value)
    metadata = search_get_pb2.MetadataResult(id_as_bytes=uuid.UUID(object_id).bytes)
    if distance is not None and request.metadata.distance:
        metadata.distance, metadata.distance_present = distance, True
    if "default" in request.metadata.vectors or request.metadata.vector:
        metadata.vectors.append(
            base_pb2.Vectors(
                name="default",
                vector_bytes=struct.pack(f"<{len(obj.vector)}f", *obj.vector),
                type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
            )
        )
    return search_get_pb2.SearchResult(
        properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields=fields),
            target_collection=request.collection,
        ),
        metadata=metadata,
    )


@asynccontextmanager
async def serving(stub: FakeWeaviate) -> AsyncIterator[FakeWeaviate]:
    """Serve the stub's REST and gRPC sides on free local ports."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stub.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stub.http_port = runner.addresses[0][1]
    server = grpc.aio.server()
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(stub, server)
    stub.grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield stub
    finally:
        await server.stop(None)
        await runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeaviate]:
    async with serving(FakeWeaviate()) as stub:
        yield stub


@pytest.fixture
async def index(fake: FakeWeaviate) -> AsyncIterator[WeaviateVectorIndex]:
    idx = WeaviateVectorIndex.from_url(
        f"http://127.0.0.1:{fake.http_port}",
        fake.grpc_port,
        collection="copilotTest",  # lower-case on purpose: Weaviate capitalises
        dimension=DIM,
        skip_init_checks=True,  # the init checks also ask PyPI for the latest client
    )
    try:
        yield idx
    finally:
        await idx.close()


def chunk(
    chunk_id: str,
    *,
    vector: list[float] | None = None,
    file_id: str = "file-1",
    owner: str = "u-owner",
    scope: str = "company",
    department: str | None = None,
    classification: str = "internal",
    page: int | None = 2,
    tags: tuple[str, ...] = (),
) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=chunk_id,
        file_id=file_id,
        file_name="Handbook.pdf",
        ordinal=1,
        page=page,
        text=f"text of {chunk_id}",
        access=ChunkAccess(
            owner_id=owner, scope=scope, department_id=department, classification=classification
        ),
        vector=vector if vector is not None else [0.5, 0.25, 0.125, 1.0],
        tags=tags,
    )


DEPT_USER = AccessScope(
    user_id="u-alice", department_id="d-sales", classifications=frozenset({"public", "internal"})
)
DEPT_USER_TOKENS = [
    "company:internal",
    "company:public",
    "dept:d-sales:internal",
    "dept:d-sales:public",
    "user:u-alice",
]


def floats(raw: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# ---- schema ----------------------------------------------------------------------------


async def test_adapter_satisfies_protocol(index: WeaviateVectorIndex) -> None:
    assert isinstance(index, VectorIndex)
    assert index.name == "weaviate"
    assert index.collection_name == COLLECTION


async def test_collection_schema_sent_once(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    await index.add([chunk("c1")])
    await index.add([chunk("c2")])

    posts = [body for method, path, body in fake.rest if (method, path) == ("POST", "/v1/schema")]
    (schema,) = posts
    assert schema["class"] == COLLECTION
    # Our own vectors: no vectorizer, one named vector, HNSW with cosine distance.
    assert "moduleConfig" not in schema
    assert schema.get("vectorizer", "none") == "none"
    assert schema["vectorConfig"] == {
        "default": {
            "vectorizer": {"none": {}},
            "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "cosine"},
        }
    }
    props = {p["name"]: p for p in schema["properties"]}
    assert set(props) == {*ID_LIKE, "access", "tags", "file_name", "page", "ordinal", "text"}
    # The access tokens and the tags: arrays of whole values, filterable, not searchable.
    for name in ("access", "tags"):
        assert props[name]["dataType"] == ["text[]"], name
        assert props[name]["tokenization"] == "field", name
        assert props[name]["indexFilterable"] is True, name
        assert props[name]["indexSearchable"] is False, name
    for name in ID_LIKE:
        assert props[name]["dataType"] == ["text"], name
        assert props[name]["tokenization"] == "field", name
        assert props[name]["indexFilterable"] is True, name
    assert props["page"]["dataType"] == ["int"]
    assert props["ordinal"]["dataType"] == ["int"]
    assert props["text"]["dataType"] == ["text"]
    assert props["file_name"]["dataType"] == ["text"]

    gets = [path for method, path, _ in fake.rest if method == "GET" and "schema" in path]
    assert gets == [f"/v1/schema/{COLLECTION}"]  # existence checked once, then cached


async def test_existing_collection_is_not_recreated(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    fake.schemas[COLLECTION] = {
        "class": COLLECTION,
        "properties": [
            {"name": name, "dataType": ["text[]"], "tokenization": "field"}
            for name in ("access", "tags")
        ],
        "vectorConfig": {"default": {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw"}},
    }
    await index.count()
    assert not [1 for method, path, _ in fake.rest if (method, path) == ("POST", "/v1/schema")]


async def test_a_collection_from_before_access_tokens_is_refused_until_rebuilt(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    """Searching it would silently find nothing: say so, and let `clear` rebuild it."""
    fake.schemas[COLLECTION] = {
        "class": COLLECTION,
        "properties": [{"name": "scope", "dataType": ["text"], "tokenization": "field"}],
        "vectorConfig": {"default": {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw"}},
    }
    for call in (index.search([0.0] * DIM, DEPT_USER, k=3), index.add([chunk("c1")])):
        with pytest.raises(SearchIndexError, match="copilot reindex --all"):
            await call
    await index.clear()  # what `copilot reindex --all` starts with
    props = {p["name"] for p in fake.schemas[COLLECTION]["properties"]}
    assert "access" in props
    await index.add([chunk("c1")])


async def test_a_collection_from_before_tags_is_refused_until_rebuilt(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    """Weaviate's auto-schema would add `tags` as word-tokenized text, which a tag filter
    would not match: the collection is outdated, and `clear` recreates it with `tags`."""
    fake.schemas[COLLECTION] = {
        "class": COLLECTION,
        "properties": [{"name": "access", "dataType": ["text[]"], "tokenization": "field"}],
        "vectorConfig": {"default": {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw"}},
    }
    with pytest.raises(SearchIndexError, match=r"lacks tags.*copilot reindex --all"):
        await index.search([0.0] * DIM, DEPT_USER, k=3)
    await index.clear()
    props = {p["name"] for p in fake.schemas[COLLECTION]["properties"]}
    assert {"access", "tags"} <= props


async def test_clear_drops_and_recreates_the_collection(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    await index.clear()
    schema_calls = [(m, p) for m, p, _ in fake.rest if "schema" in p]
    assert schema_calls == [
        ("GET", f"/v1/schema/{COLLECTION}"),
        ("POST", "/v1/schema"),
        ("DELETE", f"/v1/schema/{COLLECTION}"),
        ("GET", f"/v1/schema/{COLLECTION}"),
        ("POST", "/v1/schema"),
    ]


# ---- data over gRPC --------------------------------------------------------------------


async def test_batch_insert_sends_uuid_vector_and_properties(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    fixed = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    chunks = [
        chunk(fixed, vector=[1.0, 0.0, 0.5, -0.25], page=None),
        chunk("plain-id", scope="department", department="d-sales"),
    ]
    await index.add(chunks)

    (request,) = fake.calls("BatchObjects")
    first, second = request.objects
    assert first.collection == second.collection == COLLECTION
    assert first.uuid == fixed  # a UUID chunk id is used as is
    assert second.uuid == str(uuid.uuid5(CHUNK_NAMESPACE, "plain-id"))
    assert object_uuid("plain-id") == object_uuid("plain-id")  # stable across runs
    ((name, vec),) = [(v.name, floats(v.vector_bytes)) for v in first.vectors]
    assert name == "default"
    assert vec == [1.0, 0.0, 0.5, -0.25]
    assert not first.vector_bytes  # only the named vector is sent

    props = batch_properties(first.properties)
    assert props == chunk_properties(chunks[0])
    assert props["tags"] == []  # no tags: an empty array, which no tag filter matches
    assert props["access"] == ["company:internal"]  # sent as a text array
    assert "department_id" not in props and "page" not in props  # None is not sent
    props2 = json_format.MessageToDict(second.properties.non_ref_properties)
    assert props2["department_id"] == "d-sales"
    assert props2["page"] == 2


async def test_batch_errors_raise(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    fake.batch_errors = [batch_pb2.BatchObjectsReply.BatchError(index=1, error="bad vector")]
    with pytest.raises(SearchIndexError) as info:
        await index.add([chunk("a"), chunk("b")])
    assert info.value.index == "weaviate"
    assert "b: bad vector" in str(info.value)


async def test_wrong_dimension_is_rejected_before_the_wire(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    with pytest.raises(SearchIndexError, match="dimension"):
        await index.add([chunk("a", vector=[1.0, 2.0])])
    with pytest.raises(SearchIndexError, match="dimension"):
        await index.search([1.0], DEPT_USER, k=3)
    assert fake.grpc_calls == []


async def test_search_is_near_vector_with_scope_filter_and_distance(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    await index.search([0.1, 0.2, 0.3, 0.4], DEPT_USER, k=5)

    (request,) = fake.calls("Search")
    assert request.collection == COLLECTION
    assert request.limit == 5
    assert request.metadata.distance is True
    assert not request.HasField("hybrid_search") and not request.HasField("bm25_search")
    near = request.near_vector
    targets, vector = _near_vector_target_and_values(near)
    assert targets == ["default"]
    assert vector == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert proto_filter_tree(request.filters) == ("ContainsAny", "access", DEPT_USER_TOKENS)


async def test_a_tag_filter_goes_into_the_query_beside_access() -> None:
    """The tags searched for are one more `contains_any` clause ANDed to the access one,
    inside the near_vector request: the engine returns only tagged, readable chunks."""
    async with evaluating_index() as (stub, idx):
        await idx.add(
            [
                chunk("hr", tags=("hr", "policies")),
                chunk("fin", tags=("finance",)),
                chunk("untagged"),
                chunk("hr-secret", tags=("hr",), classification="secret"),
            ]
        )
        found = await idx.search([0.5, 0.25, 0.125, 1.0], DEPT_USER, 10, ("hr", "legal"))
        everything = await idx.search([0.5, 0.25, 0.125, 1.0], DEPT_USER, 10)
    assert {hit.chunk_id for hit in found} == {"hr"}
    assert {hit.chunk_id for hit in everything} == {"hr", "fin", "untagged"}
    tagged, plain = stub.calls("Search")
    assert proto_filter_tree(tagged.filters) == (
        "And",
        [("ContainsAny", "access", DEPT_USER_TOKENS), ("ContainsAny", "tags", ["hr", "legal"])],
    )
    assert proto_filter_tree(plain.filters) == ("ContainsAny", "access", DEPT_USER_TOKENS)


def _near_vector_target_and_values(
    near: base_search_pb2.NearVector,
) -> tuple[list[str], list[float]]:
    """The client encodes `target_vector` + one vector in one of a few equivalent forms."""
    if near.vector_for_targets:
        return [v.name for v in near.vector_for_targets], floats(
            near.vector_for_targets[0].vector_bytes
        )
    targets = list(near.targets.target_vectors) or list(near.target_vectors)
    if near.vectors:
        return targets, floats(near.vectors[0].vector_bytes)
    return targets, floats(near.vector_bytes)


async def test_search_maps_objects_to_hits(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    def result(distance: float, **props: Any) -> search_get_pb2.SearchResult:
        fields = {
            k: (
                properties_pb2.Value(int_value=v)
                if isinstance(v, int)
                else properties_pb2.Value(text_value=v)
                if v is not None
                else properties_pb2.Value(null_value=0)
            )
            for k, v in props.items()
        }
        return search_get_pb2.SearchResult(
            properties=search_get_pb2.PropertiesResult(
                non_ref_props=properties_pb2.Properties(fields=fields),
                target_collection=COLLECTION,
            ),
            metadata=search_get_pb2.MetadataResult(
                id_as_bytes=object_uuid(str(props["chunk_id"])).bytes,
                distance=distance,
                distance_present=True,
            ),
        )

    fake.search_results = [
        result(
            0.25,
            chunk_id="c1",
            file_id="f1",
            file_name="A.pdf",
            page=4,
            ordinal=2,
            text="alpha",
            owner_id="u-x",
            scope="company",
            department_id=None,
            classification="public",
        ),
        result(
            1.5,
            chunk_id="c2",
            file_id="f2",
            file_name="B.md",
            ordinal=0,
            text="beta",
            owner_id="u-alice",
            scope="personal",
            classification="internal",
        ),
    ]
    hits = await index.search([0.0, 1.0, 0.0, 0.0], DEPT_USER, k=2)
    assert hits == [
        Hit(
            chunk_id="c1",
            score=0.75,
            file_id="f1",
            file_name="A.pdf",
            page=4,
            ordinal=2,
            text="alpha",
            metadata={
                "engine": "weaviate",
                "owner_id": "u-x",
                "scope": "company",
                "department_id": None,
                "classification": "public",
            },
        ),
        Hit(
            chunk_id="c2",
            score=-0.5,
            file_id="f2",
            file_name="B.md",
            page=None,
            ordinal=0,
            text="beta",
            metadata={
                "engine": "weaviate",
                "owner_id": "u-alice",
                "scope": "personal",
                "department_id": None,
                "classification": "internal",
            },
        ),
    ]


async def test_delete_file_loops_delete_many_on_file_id(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    fake.delete_rounds = [3, 0]
    await index.delete_file("file-9")
    requests = fake.calls("BatchDelete")
    assert len(requests) == 2  # until nothing matches
    for request in requests:
        assert request.collection == COLLECTION
        assert proto_filter_tree(request.filters) == ("Equal", "file_id", "file-9")
        assert not request.dry_run


async def test_delete_chunks_deletes_many_by_object_uuid(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    chunk_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    fake.delete_rounds = [2, 0]
    await index.delete_chunks(chunk_ids)
    await index.delete_chunks([])  # nothing to send
    requests = fake.calls("BatchDelete")
    assert len(requests) == 2
    for request in requests:
        assert request.collection == COLLECTION
        assert proto_filter_tree(request.filters) == ("ContainsAny", "_id", chunk_ids)


async def test_count_aggregates_with_optional_file_filter(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    fake.objects_count = 17
    assert await index.count() == 17
    assert await index.count("file-3") == 17
    whole, per_file = fake.calls("Aggregate")
    assert whole.objects_count and per_file.objects_count
    assert not whole.HasField("filters")
    assert proto_filter_tree(per_file.filters) == ("Equal", "file_id", "file-3")


async def test_health_uses_readiness_probe(fake: FakeWeaviate, index: WeaviateVectorIndex) -> None:
    health = await index.health()
    assert health.ok and health.detail == "ready"
    assert ("GET", "/v1/.well-known/ready", None) in fake.rest


async def test_grpc_failure_becomes_search_index_error(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    await index.count()  # creates the collection while the stub is healthy
    fake.fail_grpc = True
    for call in (
        index.search([0.0] * DIM, DEPT_USER, k=3),
        index.add([chunk("c1")]),
        index.delete_file("f"),
        index.count(),
    ):
        with pytest.raises(SearchIndexError) as info:
            await call
        assert info.value.index == "weaviate"


async def test_connection_refused_becomes_search_index_error() -> None:
    with socket.socket() as http_sock, socket.socket() as grpc_sock:
        http_sock.bind(("127.0.0.1", 0))
        grpc_sock.bind(("127.0.0.1", 0))
        http_port, grpc_port = http_sock.getsockname()[1], grpc_sock.getsockname()[1]
    idx = WeaviateVectorIndex.from_url(
        f"http://127.0.0.1:{http_port}", grpc_port, dimension=DIM, skip_init_checks=True
    )
    try:
        with pytest.raises(SearchIndexError) as info:
            await idx.search([0.0] * DIM, DEPT_USER, k=1)
        assert info.value.index == "weaviate"
        assert not (await idx.health()).ok
    finally:
        await idx.close()


# ---- the access filter, structurally and semantically ----------------------------------


def filter_tree(f: _Filters) -> Any:
    """The Python Filter object as a plain tuple tree."""
    if isinstance(f, _FilterAnd | _FilterOr):
        return (f.operator.value, [filter_tree(child) for child in f.filters])
    assert isinstance(f, _FilterValue), f
    value = list(f.value) if isinstance(f.value, list | tuple) else f.value
    return (f.operator.value, f.target, value)


_PROTO_OPS = {
    base_pb2.Filters.OPERATOR_AND: "And",
    base_pb2.Filters.OPERATOR_OR: "Or",
    base_pb2.Filters.OPERATOR_EQUAL: "Equal",
    base_pb2.Filters.OPERATOR_CONTAINS_ANY: "ContainsAny",
}


def proto_filter_tree(f: base_pb2.Filters) -> Any:
    """The protobuf filter the client put on the wire, as the same tuple tree."""
    op = _PROTO_OPS[f.operator]
    if op in ("And", "Or"):
        return (op, [proto_filter_tree(child) for child in f.filters])
    target = f.target.property
    if f.HasField("value_text_array"):
        return (op, target, list(f.value_text_array.values))
    return (op, target, f.value_text)


def evaluate(tree: Any, props: dict[str, Any]) -> bool:
    """A tiny interpreter for the tuple tree, with Weaviate's semantics for missing values
    and arrays: an array property matches when any of its elements does."""
    op = tree[0]
    if op == "And":
        return all(evaluate(child, props) for child in tree[1])
    if op == "Or":
        return any(evaluate(child, props) for child in tree[1])
    _, target, value = tree
    actual = props.get(target)  # a property that was not sent is null: matches nothing
    elements = [] if actual is None else actual if isinstance(actual, list) else [actual]
    if op == "Equal":
        return value in elements
    if op == "ContainsAny":
        return any(element in value for element in elements)
    raise AssertionError(op)


def filter_targets(tree: Any) -> set[str]:
    if tree[0] in ("And", "Or"):
        return set().union(*(filter_targets(child) for child in tree[1]))
    return {tree[1]}


def test_personal_only_filter() -> None:
    scope = AccessScope(user_id="u1", department_id=None, classifications=frozenset())
    assert filter_tree(access_filter(scope)) == ("ContainsAny", "access", ["user:u1"])


def test_department_filter() -> None:
    assert filter_tree(access_filter(DEPT_USER)) == ("ContainsAny", "access", DEPT_USER_TOKENS)


def test_classification_filter_without_department() -> None:
    scope = AccessScope(
        user_id="u2", department_id=None, classifications=frozenset({"secret", "public"})
    )
    assert filter_tree(access_filter(scope)) == (
        "ContainsAny",
        "access",
        ["company:public", "company:secret", "user:u2"],
    )


def test_access_filter_agrees_with_scope_rule_on_random_chunks() -> None:
    rng = random.Random(7)
    users, departments = ["u1", "u2", "u3"], ["d1", "d2", None]
    levels = ["public", "internal", "confidential", "secret"]
    checked = 0
    for _ in range(60):
        scope = AccessScope(
            user_id=rng.choice(users),
            department_id=rng.choice(departments),
            classifications=frozenset(rng.sample(levels, rng.randint(0, len(levels)))),
        )
        tree = filter_tree(access_filter(scope))
        for _ in range(80):
            access = ChunkAccess(
                owner_id=rng.choice(users),
                scope=rng.choice(["personal", "company", "department"]),
                department_id=rng.choice(departments),
                classification=rng.choice(levels),
            )
            props = chunk_properties(
                chunk(
                    "c",
                    owner=access.owner_id,
                    scope=access.scope,
                    department=access.department_id,
                    classification=access.classification,
                )
            )
            assert evaluate(tree, props) == scope.allows(access), (scope, access)
            checked += 1
    assert checked == 4800


async def test_wire_filter_agrees_with_scope_rule(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    """The protobuf filter the client sends means the same as the Python rule."""
    rng = random.Random(11)
    levels = ["public", "internal", "secret"]
    scopes = [
        AccessScope(user_id=user, department_id=department, classifications=frozenset(readable))
        for user in ("u1", "u2")
        for department in ("d1", None)
        for readable in ((), ("public",), ("internal", "secret"))
    ]
    for scope in scopes:
        await index.search([0.0] * DIM, scope, k=1)
    for scope, request in zip(scopes, fake.calls("Search"), strict=True):
        tree = proto_filter_tree(request.filters)
        for _ in range(100):
            access = ChunkAccess(
                owner_id=rng.choice(["u1", "u2"]),
                scope=rng.choice(["personal", "company", "department"]),
                department_id=rng.choice(["d1", "d2", None]),
                classification=rng.choice(levels),
            )
            props = chunk_properties(
                chunk(
                    "c",
                    owner=access.owner_id,
                    scope=access.scope,
                    department=access.department_id,
                    classification=access.classification,
                )
            )
            assert evaluate(tree, props) == scope.allows(access), (scope, access)


async def test_large_adds_are_sliced_and_errors_name_the_right_chunk(
    fake: FakeWeaviate, index: WeaviateVectorIndex
) -> None:
    chunks = [chunk(f"c{i}") for i in range(INSERT_BATCH_SIZE + 10)]
    await index.add(chunks)
    sizes = [len(request.objects) for request in fake.calls("BatchObjects")]
    assert sizes == [INSERT_BATCH_SIZE, 10]

    fake.batch_errors = [batch_pb2.BatchObjectsReply.BatchError(index=3, error="nope")]
    with pytest.raises(SearchIndexError, match="first: c3: nope"):
        await index.add(chunks)


@asynccontextmanager
async def evaluating_index() -> AsyncIterator[tuple[FakeWeaviate, WeaviateVectorIndex]]:
    async with serving(FakeWeaviate.evaluating()) as stub:
        idx = WeaviateVectorIndex.from_url(
            f"http://127.0.0.1:{stub.http_port}",
            stub.grpc_port,
            collection=COLLECTION,
            dimension=DIM,
            skip_init_checks=True,
        )
        try:
            yield stub, idx
        finally:
            await idx.close()


async def test_update_access_rewrites_the_files_objects_with_their_stored_vectors() -> None:
    async with evaluating_index() as (stub, idx):
        mine = [chunk(f"m{i}", vector=[1.0, float(i), 0.0, 0.5], tags=("hr",)) for i in range(3)]
        other = chunk("o1", file_id="file-2")
        await idx.add([*mine, other])
        changed = ChunkAccess("u-bob", "personal", None, "secret")
        await idx.update_access("file-1", changed)

    fetch = stub.calls("Search")[-1]
    assert proto_filter_tree(fetch.filters) == ("Equal", "file_id", "file-1")
    assert list(fetch.metadata.vectors) == ["default"]  # the stored vectors are read back
    rewrite = stub.calls("BatchObjects")[-1]
    assert sorted(o.uuid for o in rewrite.objects) == sorted(
        str(object_uuid(c.chunk_id)) for c in mine
    )
    stored = stub.objects[COLLECTION]
    for c in mine:
        kept = stored[str(object_uuid(c.chunk_id))]
        assert kept.vector == c.vector  # nothing was re-embedded
        assert kept.properties["access"] == ["user:u-bob"]
        assert kept.properties["scope"] == "personal"
        assert kept.properties["classification"] == "secret"
        assert kept.properties["text"] == c.text
        assert kept.properties["tags"] == ["hr"]  # an access change keeps the tags
        assert "department_id" not in kept.properties
    assert stored[str(object_uuid("o1"))].properties["access"] == ["company:internal"]


# ---- rebuilds beside the live collection, switched by alias ---------------------------


def _schema_and_alias_calls(stub: FakeWeaviate) -> list[tuple[str, str, Any]]:
    return [
        (method, path, body)
        for method, path, body in stub.rest
        if path.startswith(("/v1/aliases", "/v1/schema")) and method != "GET"
    ]


async def _found(idx: WeaviateVectorIndex) -> set[str]:
    scope = AccessScope("u-x", None, frozenset({"internal"}))
    return {hit.chunk_id for hit in await idx.search([0.5, 0.25, 0.125, 1.0], scope, 10)}


async def test_a_rebuild_fills_a_new_collection_and_moves_the_alias() -> None:
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])  # the first generation: a collection named COLLECTION
        stub.rest.clear()
        rebuilt = await idx.begin_rebuild()
        new = rebuilt.collection_name
        assert new.startswith(f"{COLLECTION}_") and new[len(COLLECTION) + 1 :].isalnum()
        (create, alias) = _schema_and_alias_calls(stub)
        assert create[:2] == ("POST", "/v1/schema") and create[2]["class"] == new
        assert alias == ("POST", "/v1/aliases", {"class": new, "alias": f"{COLLECTION}_Rebuild"})

        await rebuilt.add([chunk("old")])
        assert await _found(idx) == {"old"}  # searches still answer from the live one
        stub.grpc_calls.clear()
        await idx.add([chunk("new", file_id="file-2")])  # reaches both, by alias
        assert [r.objects[0].collection for r in stub.calls("BatchObjects")] == [
            COLLECTION,
            f"{COLLECTION}_Rebuild",
        ]
        await idx.delete_file("file-9")
        assert {r.collection for r in stub.calls("BatchDelete")} == {
            COLLECTION,
            f"{COLLECTION}_Rebuild",
        }

        stub.rest.clear()
        await idx.switch_to(rebuilt)
        assert _schema_and_alias_calls(stub) == [
            ("DELETE", f"/v1/schema/{COLLECTION}", None),  # the concrete first generation
            ("POST", "/v1/aliases", {"class": new, "alias": COLLECTION}),
            ("DELETE", f"/v1/aliases/{COLLECTION}_Rebuild", None),
        ]
        assert stub.aliases == {COLLECTION: new} and set(stub.schemas) == {new}
        assert await _found(idx) == {"old", "new"}

        # The next rebuild repoints the alias in one call, then deletes the old collection.
        second = await idx.begin_rebuild()
        await second.add([chunk("newest")])
        stub.rest.clear()
        await idx.switch_to(second)
        assert _schema_and_alias_calls(stub) == [
            ("PUT", f"/v1/aliases/{COLLECTION}", {"class": second.collection_name}),
            ("DELETE", f"/v1/aliases/{COLLECTION}_Rebuild", None),
            ("DELETE", f"/v1/schema/{new}", None),
        ]
        assert set(stub.schemas) == {second.collection_name}
        assert await _found(idx) == {"newest"}


async def test_a_discarded_rebuild_leaves_the_live_collection() -> None:
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])
        rebuilt = await idx.begin_rebuild()
        await rebuilt.add([chunk("partial")])
        stub.rest.clear()
        await idx.discard(rebuilt)
        assert _schema_and_alias_calls(stub) == [
            ("DELETE", f"/v1/aliases/{COLLECTION}_Rebuild", None),
            ("DELETE", f"/v1/schema/{rebuilt.collection_name}", None),
        ]
        assert set(stub.schemas) == {COLLECTION} and stub.aliases == {}
        assert await _found(idx) == {"old"}
        stub.grpc_calls.clear()
        await idx.add([chunk("later")])
        assert [r.objects[0].collection for r in stub.calls("BatchObjects")] == [COLLECTION]


def _age_heartbeat(stub: FakeWeaviate, collection: str, seconds: float) -> None:
    """What a rebuild killed `seconds` ago leaves: its collection's heartbeat that old."""
    stub.schemas[collection]["description"] = f"{HEARTBEAT_DESCRIPTION}{time.time() - seconds}"


def _heartbeat_of(stub: FakeWeaviate, collection: str) -> float:
    return float(stub.schemas[collection]["description"].removeprefix(HEARTBEAT_DESCRIPTION))


def _second_handle(stub: FakeWeaviate) -> WeaviateVectorIndex:
    return WeaviateVectorIndex.from_url(
        f"http://127.0.0.1:{stub.http_port}",
        stub.grpc_port,
        collection=COLLECTION,
        dimension=DIM,
        skip_init_checks=True,
    )


async def test_a_killed_rebuilds_marker_is_removed_at_the_next_start() -> None:
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])
        killed = await idx.begin_rebuild()
        assert _heartbeat_of(stub, killed.collection_name) == pytest.approx(time.time(), abs=5)
        await idx._rebuild.stop_beating()  # killed: nothing beats any more
        _age_heartbeat(stub, killed.collection_name, rebuild_marker.STALE_SECONDS + 1)

        restarted = _second_handle(stub)
        try:
            stub.grpc_calls.clear()
            await restarted.add([chunk("after", file_id="file-2")])  # the first use: cleans up
            assert set(stub.schemas) == {COLLECTION} and stub.aliases == {}
            assert [r.objects[0].collection for r in stub.calls("BatchObjects")] == [COLLECTION]
            assert await _found(restarted) == {"old", "after"}
        finally:
            await restarted.close()


async def test_a_stale_marker_gets_no_writes_and_the_next_rebuild_replaces_it() -> None:
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])
        killed = await idx.begin_rebuild()
        await idx._rebuild.stop_beating()
        _age_heartbeat(stub, killed.collection_name, rebuild_marker.STALE_SECONDS + 1)
        idx._rebuild.forget()
        stub.grpc_calls.clear()
        await idx.add([chunk("during", file_id="file-2")])
        assert [r.objects[0].collection for r in stub.calls("BatchObjects")] == [COLLECTION]

        rebuilt = await idx.begin_rebuild()
        assert killed.collection_name not in stub.schemas
        assert stub.aliases == {f"{COLLECTION}_Rebuild": rebuilt.collection_name}
        await idx.discard(rebuilt)


async def test_a_live_rebuild_is_neither_removed_nor_started_twice() -> None:
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])
        running = await idx.begin_rebuild()
        other = _second_handle(stub)
        try:
            stub.grpc_calls.clear()
            await other.add([chunk("during", file_id="file-2")])
            assert running.collection_name in stub.schemas  # still there, still written to
            assert [r.objects[0].collection for r in stub.calls("BatchObjects")] == [
                COLLECTION,
                f"{COLLECTION}_Rebuild",
            ]
            with pytest.raises(SearchIndexError, match="another rebuild is running"):
                await other.begin_rebuild()
        finally:
            await other.close()
        await idx.discard(running)


async def test_a_running_rebuild_rewrites_its_heartbeat_until_it_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild_marker, "HEARTBEAT_SECONDS", 0.05)
    async with evaluating_index() as (stub, idx):
        await idx.add([chunk("old")])
        rebuilt = await idx.begin_rebuild()
        name = rebuilt.collection_name
        _age_heartbeat(stub, name, 60)
        await asyncio.sleep(0.5)
        puts = [p for m, p, _ in stub.rest if m == "PUT" and p == f"/v1/schema/{name}"]
        assert len(puts) >= 2
        assert _heartbeat_of(stub, name) == pytest.approx(time.time(), abs=5)
        await idx.switch_to(rebuilt)
        count = len([1 for m, p, _ in stub.rest if m == "PUT" and p == f"/v1/schema/{name}"])
        await asyncio.sleep(0.2)
        assert len([1 for m, p, _ in stub.rest if m == "PUT" and p == f"/v1/schema/{name}"]) == (
            count
        )
