"""Vector index on Weaviate, through the v4 async client (REST for schema, gRPC for data).

The collection stores our own embeddings (no Weaviate vectorizer), one named vector
(`default`, cosine, HNSW), the chunk's access tokens as a `text[]` property with field
tokenization, and the fields they came from as exact-match text metadata. Every search
carries the caller's `AccessScope` as one `contains_any` filter on the tokens (the pure
function `access_filter`), so unreadable chunks are never returned.

Why not `langchain_weaviate.WeaviateVectorStore`? It needs a sync client (the async one is
optional), searches through `hybrid` with an alpha blend, and returns LangChain `Document`s.
We want pure vector search (BM25 lives in the keyword index and the ensemble fuses the two),
an async path end to end and our own `Hit`s, so the official client is used directly.

Rebuilds (`copilot reindex --all`) fill a new collection (`<Name>_<UTC time>`) beside the
live one, reachable meanwhile through the alias `<Name>_Rebuild`, and switch by pointing
the collection alias `<Name>` at it (Weaviate >= 1.32; client 4.23 has `client.alias`):
searches in every process follow at once. The old collection is deleted after. The first
rebuild has to delete a concrete collection named `<Name>` (what installs had before)
before the alias can take its name: searches fail for that moment, once. While the rebuild
alias exists and its collection's heartbeat is fresh, writes go to it too; a stale one,
left by a killed rebuild, is dropped by the next rebuild or start
(see copilot.search.rebuild_marker).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import weaviate
from weaviate.aliases.alias import AliasReturn
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.init import Auth
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections.classes.config_vectors import _VectorConfigCreate
from weaviate.collections.classes.data import DataObject
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateBaseError, WeaviateUnsupportedFeatureError

from copilot.search.base import (
    TAGS_FIELD,
    Health,
    Hit,
    IndexedChunk,
    SearchIndexError,
    outdated_index,
)
from copilot.search.rebuild_marker import RebuildMarker
from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess, access_fields

log = logging.getLogger(__name__)

ENGINE = "weaviate"
VECTOR_NAME = "default"
# Namespace for chunk ids that are not UUIDs themselves (uuid5 keeps re-indexing idempotent).
CHUNK_NAMESPACE = uuid.UUID("6f0d6c52-4a55-4f8e-9a43-3a1c1d2f0b7e")

KEYWORD_PROPERTIES = (
    "chunk_id",
    "file_id",
    "owner_id",
    "department_id",
    "scope",
    "classification",
)
METADATA_PROPERTIES = ("owner_id", "scope", "department_id", "classification")
RETURN_PROPERTIES = [*KEYWORD_PROPERTIES, TAGS_FIELD, "file_name", "page", "ordinal", "text"]
#: Properties a collection of an older schema may lack (refused until it is rebuilt: the
#: auto-schema would add them with word tokenization, and filters would not match).
REQUIRED_PROPERTIES = (ACCESS_FIELD, TAGS_FIELD)
INSERT_BATCH_SIZE = 256
# Objects read per request when a file's access changes (well under QUERY_MAXIMUM_RESULTS).
FETCH_PAGE_SIZE = 1000
# delete_many is capped server-side (QUERY_MAXIMUM_RESULTS, 10k by default): loop, bounded.
MAX_DELETE_ROUNDS = 1000
#: How the collection being rebuilt carries its heartbeat, in its description (see
#: copilot.search.rebuild_marker): this, then seconds since the epoch.
HEARTBEAT_DESCRIPTION = "copilot rebuild, heartbeat "


def rebuild_alias(name: str) -> str:
    """The alias of the collection being built beside the live one, while a rebuild runs."""
    return f"{name}_Rebuild"


def heartbeat_in(description: str | None) -> float:
    """The heartbeat a rebuilt collection's description carries (0.0: none)."""
    if description and description.startswith(HEARTBEAT_DESCRIPTION):
        try:
            return float(description.removeprefix(HEARTBEAT_DESCRIPTION))
        except ValueError:
            pass
    return 0.0


def generation_name(name: str, now: datetime) -> str:
    """A new collection for the alias `name`."""
    return f"{name}_{now.strftime('%Y%m%dT%H%M%S%f')}"


def _exact(name: str, data_type: DataType) -> Property:
    """Whole values, filterable, not searchable (FIELD tokenization)."""
    return Property(
        name=name,
        data_type=data_type,
        tokenization=Tokenization.FIELD,
        index_filterable=True,
        index_searchable=False,
    )


def collection_properties() -> list[Property]:
    """Schema properties: FIELD tokenization for ids, access and tags so filters match
    whole values."""
    return [
        *(_exact(name, DataType.TEXT) for name in KEYWORD_PROPERTIES),
        _exact(ACCESS_FIELD, DataType.TEXT_ARRAY),
        _exact(TAGS_FIELD, DataType.TEXT_ARRAY),
        Property(name="file_name", data_type=DataType.TEXT),
        Property(name="page", data_type=DataType.INT),
        Property(name="ordinal", data_type=DataType.INT),
        Property(name="text", data_type=DataType.TEXT),
    ]


def vector_config() -> _VectorConfigCreate:
    """Self-provided vectors (no vectorizer) in an HNSW index with cosine distance."""
    return Configure.Vectors.self_provided(
        name=VECTOR_NAME,
        vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
    )


def access_filter(scope: AccessScope) -> _Filters:
    """The one access clause: the chunk's tokens hold any of the user's (pure, for tests).
    A scope always holds its user's token, so the list is never empty (Weaviate rejects
    `contains_any([])`)."""
    return Filter.by_property(ACCESS_FIELD).contains_any(scope.sorted_tokens())


def search_filter(scope: AccessScope, tags: Sequence[str] = ()) -> _Filters:
    """The access clause, and with `tags` the chunk holds any of them (pure, for tests)."""
    if not tags:
        return access_filter(scope)
    return access_filter(scope) & Filter.by_property(TAGS_FIELD).contains_any(list(tags))


def object_uuid(chunk_id: str) -> uuid.UUID:
    """Deterministic object id: the chunk id itself when it is a UUID, else uuid5 of it."""
    try:
        return uuid.UUID(chunk_id)
    except ValueError:
        return uuid.uuid5(CHUNK_NAMESPACE, chunk_id)


def chunk_properties(chunk: IndexedChunk) -> dict[str, Any]:
    """Stored properties; None values are left out (Weaviate treats missing as null)."""
    props: dict[str, Any] = {
        "chunk_id": chunk.chunk_id,
        "file_id": chunk.file_id,
        "file_name": chunk.file_name,
        "page": chunk.page,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        TAGS_FIELD: list(chunk.tags),
        **access_fields(chunk.access),
    }
    return {key: value for key, value in props.items() if value is not None}


def hit_from_properties(properties: Mapping[str, Any], distance: float | None) -> Hit:
    """Map a returned object to a `Hit`; cosine distance d becomes similarity 1 - d."""
    page = properties.get("page")
    return Hit(
        chunk_id=str(properties.get("chunk_id", "")),
        score=1.0 - float(distance) if distance is not None else 0.0,
        file_id=str(properties.get("file_id", "")),
        file_name=str(properties.get("file_name", "")),
        page=int(page) if page is not None else None,
        ordinal=int(properties.get("ordinal") or 0),
        text=str(properties.get("text", "")),
        metadata={"engine": ENGINE, **{name: properties.get(name) for name in METADATA_PROPERTIES}},
    )


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


class WeaviateVectorIndex:
    """`VectorIndex` on one Weaviate collection. Owns the injected client (closes it)."""

    name = ENGINE

    def __init__(
        self,
        client: weaviate.WeaviateAsyncClient,
        collection: str,
        dimension: int,
        *,
        owns_client: bool = True,
    ) -> None:
        if not collection:
            raise ValueError("collection name must not be empty")
        self._client = client
        # Weaviate capitalises class names; do it here so every call uses the same name.
        self._collection = collection[0].upper() + collection[1:]
        self._dimension = dimension
        self._owns_client = owns_client
        self._ready = False
        self._lock = asyncio.Lock()
        self._rebuild = RebuildMarker(self._rebuild_heartbeat)
        self._builds_for: str | None = None  # set on a collection a rebuild is filling

    @classmethod
    def from_url(
        cls,
        http_url: str,
        grpc_port: int = 50051,
        api_key: str | None = None,
        *,
        collection: str = "CopilotChunks",
        dimension: int = 384,
        skip_init_checks: bool = False,
    ) -> WeaviateVectorIndex:
        """Build an unconnected async client; the first call connects (REST + gRPC)."""
        parts = urlsplit(http_url)
        secure = parts.scheme == "https"
        host = parts.hostname or "localhost"
        client = weaviate.use_async_with_custom(
            http_host=host,
            http_port=parts.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=host,
            grpc_port=grpc_port,
            grpc_secure=secure,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
            skip_init_checks=skip_init_checks,
        )
        return cls(client, collection, dimension)

    @property
    def collection_name(self) -> str:
        return self._collection

    async def ensure_collection(self, *, rebuilding: bool = False) -> None:
        """Connect and create the collection unless it exists (idempotent, race-safe).

        A collection from before access tokens or tags (no `access` or `tags` property) is
        refused with a message naming the fix, rechecked on every call until `copilot
        reindex --all` (here or in another process) has recreated it: searching it would
        find nothing.
        """
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            try:
                await self._client.connect()
                if await self._rebuild.stale():
                    await self._drop_stale_rebuild()
                if await self._alias(self._collection) is not None:
                    self._ready = True  # a rebuild made its collection with our schema
                    return
                exists = await self._client.collections.exists(self._collection)
                if exists and not rebuilding and (missing := await self._missing_properties()):
                    raise outdated_index(ENGINE, missing)
                if not exists:
                    try:
                        await self._client.collections.create(
                            self._collection,
                            properties=collection_properties(),
                            vector_config=vector_config(),
                        )
                    except WeaviateBaseError:
                        # Another process may have created it meanwhile.
                        if not await self._client.collections.exists(self._collection):
                            raise
            except WeaviateBaseError as error:
                raise SearchIndexError(
                    ENGINE, f"cannot create collection: {_describe(error)}"
                ) from error
            self._ready = True

    async def _missing_properties(self) -> set[str]:
        config = await self._client.collections.use(self._collection).config.get(simple=True)
        return set(REQUIRED_PROPERTIES) - {prop.name for prop in config.properties}

    def _check_dimension(self, vector: Sequence[float], what: str) -> None:
        if len(vector) != self._dimension:
            raise SearchIndexError(
                ENGINE, f"{what} has dimension {len(vector)}, index expects {self._dimension}"
            )

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        """Insert or overwrite (the uuid comes from chunk_id) in gRPC batches of 256."""
        if not chunks:
            return
        objects: list[DataObject[dict[str, Any], None]] = []
        for chunk in chunks:
            if chunk.vector is None:
                raise SearchIndexError(ENGINE, f"chunk {chunk.chunk_id} has no vector")
            self._check_dimension(chunk.vector, f"chunk {chunk.chunk_id}")
            objects.append(
                DataObject(
                    properties=chunk_properties(chunk),
                    uuid=object_uuid(chunk.chunk_id),
                    vector={VECTOR_NAME: [float(x) for x in chunk.vector]},
                )
            )
        await self.ensure_collection()
        names = [chunk.chunk_id for chunk in chunks]
        await self._insert(objects, names)
        await self._in_rebuild(self._insert, objects, names, collection=self._rebuild_alias)

    @property
    def _rebuild_alias(self) -> str:
        return rebuild_alias(self._collection)

    async def _rebuild_heartbeat(self) -> float | None:
        """The heartbeat in the description of the rebuild alias's collection (None: no
        alias)."""
        try:
            alias = await self._alias(self._rebuild_alias)
            if alias is None:
                return None
            config = await self._client.collections.use(alias.collection).config.get(simple=True)
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"alias lookup failed: {_describe(error)}") from error
        return heartbeat_in(config.description)

    async def _alias(self, name: str) -> AliasReturn | None:
        """The alias `name` (None without one, or on a server without aliases, < 1.32)."""
        try:
            return await self._client.alias.get(alias_name=name)
        except WeaviateUnsupportedFeatureError:
            return None

    async def _in_rebuild(self, write: Any, *args: Any, **kwargs: Any) -> None:
        """Repeat a write on the collection being rebuilt, if a rebuild runs; one that
        ended meanwhile (its alias gone) is not an error."""
        if not await self._rebuild.running():
            return
        try:
            await write(*args, **kwargs)
        except SearchIndexError:
            self._rebuild.forget()
            if await self._rebuild.running():
                raise

    async def _insert(
        self,
        objects: Sequence[DataObject[dict[str, Any], None]],
        names: Sequence[str],
        *,
        collection: str | None = None,
    ) -> None:
        """Batch-write objects (overwriting by uuid); `names` label errors per object."""
        data = self._client.collections.use(collection or self._collection).data
        # One gRPC message per slice keeps big files under the server's message size limit.
        for start in range(0, len(objects), INSERT_BATCH_SIZE):
            try:
                result = await data.insert_many(objects[start : start + INSERT_BATCH_SIZE])
            except WeaviateBaseError as error:
                raise SearchIndexError(
                    ENGINE, f"batch insert failed: {_describe(error)}"
                ) from error
            if result.has_errors:
                index, first = min(result.errors.items(), key=lambda item: item[0])
                raise SearchIndexError(
                    ENGINE,
                    f"{len(result.errors)} object(s) failed to insert; "
                    f"first: {names[start + index]}: {first.message}",
                )

    async def delete_file(self, file_id: str) -> None:
        await self.ensure_collection()
        await self._delete_file(file_id, self._collection)
        await self._in_rebuild(self._delete_file, file_id, self._rebuild_alias)

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        await self.ensure_collection()
        where = Filter.by_id().contains_any([object_uuid(chunk_id) for chunk_id in chunk_ids])
        what = f"{len(chunk_ids)} chunk(s)"
        await self._delete_where(where, what, self._collection)
        await self._in_rebuild(self._delete_where, where, what, self._rebuild_alias)

    async def _delete_file(self, file_id: str, name: str) -> None:
        where = Filter.by_property("file_id").equal(file_id)
        await self._delete_where(where, f"file {file_id}", name)

    async def _delete_where(self, where: _Filters, what: str, name: str) -> None:
        collection = self._client.collections.use(name)
        try:
            for _ in range(MAX_DELETE_ROUNDS):
                result = await collection.data.delete_many(where=where)
                if result.failed:
                    raise SearchIndexError(
                        ENGINE, f"delete failed for {result.failed} object(s) of {what}"
                    )
                if result.matches == 0 or result.successful == 0:
                    return
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"delete failed: {_describe(error)}") from error

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """Read the file's objects with their stored vectors, then batch-write them back
        under the same uuids with the new access properties: nothing is re-embedded.

        (Weaviate updates objects one REST call at a time; the gRPC batch overwrites.)
        """
        await self.ensure_collection()
        await self._update_access(file_id, access, self._collection)
        await self._in_rebuild(self._update_access, file_id, access, self._rebuild_alias)

    async def _update_access(self, file_id: str, access: ChunkAccess, name: str) -> None:
        collection = self._client.collections.use(name)
        where = Filter.by_property("file_id").equal(file_id)
        changed = {key: value for key, value in access_fields(access).items() if value is not None}
        objects: list[DataObject[dict[str, Any], None]] = []
        try:
            while True:
                page = await collection.query.fetch_objects(
                    filters=where,
                    limit=FETCH_PAGE_SIZE,
                    offset=len(objects),
                    include_vector=[VECTOR_NAME],
                    return_properties=RETURN_PROPERTIES,
                )
                for obj in page.objects:
                    kept = {
                        key: value
                        for key, value in obj.properties.items()
                        if key not in METADATA_PROPERTIES and value is not None
                    }
                    vector = obj.vector.get(VECTOR_NAME)
                    if vector is None:
                        raise SearchIndexError(ENGINE, f"object {obj.uuid} has no stored vector")
                    floats = [float(x) for x in vector]  # type: ignore[arg-type]  # not multi
                    objects.append(
                        DataObject(
                            properties={**kept, **changed},
                            uuid=obj.uuid,
                            vector={VECTOR_NAME: floats},
                        )
                    )
                if len(page.objects) < FETCH_PAGE_SIZE:
                    break
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"access update failed: {_describe(error)}") from error
        names = [str(obj.properties["chunk_id"]) for obj in objects]
        await self._insert(objects, names, collection=name)

    async def clear(self) -> None:
        """Drop and recreate the collection: cheaper and unbounded, unlike delete_many
        (behind the alias, a rebuild's: switch to an empty new collection)."""
        await self.ensure_collection(rebuilding=True)
        if await self._alias(self._collection) is not None:
            await self.switch_to(await self.begin_rebuild())
            return
        try:
            await self._client.collections.delete(self._collection)
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"clear failed: {_describe(error)}") from error
        self._ready = False
        await self.ensure_collection()

    async def search(
        self, vector: Sequence[float], scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        if k <= 0:
            return []
        self._check_dimension(vector, "query vector")
        await self.ensure_collection()
        try:
            response = await self._client.collections.use(self._collection).query.near_vector(
                near_vector=[float(x) for x in vector],
                target_vector=VECTOR_NAME,
                limit=k,
                filters=search_filter(scope, tags),
                return_metadata=MetadataQuery(distance=True),
                return_properties=RETURN_PROPERTIES,
            )
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"search failed: {_describe(error)}") from error
        return [
            hit_from_properties(obj.properties, obj.metadata.distance) for obj in response.objects
        ]

    async def count(self, file_id: str | None = None) -> int:
        await self.ensure_collection()
        filters = Filter.by_property("file_id").equal(file_id) if file_id is not None else None
        try:
            response = await self._client.collections.use(self._collection).aggregate.over_all(
                total_count=True, filters=filters
            )
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"count failed: {_describe(error)}") from error
        return int(response.total_count or 0)

    async def health(self) -> Health:
        """Readiness probe (REST `/.well-known/ready`) with latency; never raises."""
        started = time.perf_counter()
        try:
            await self._client.connect()
            ready = await self._client.is_ready()
        except WeaviateBaseError as error:
            latency = (time.perf_counter() - started) * 1000
            return Health(ok=False, detail=_describe(error), latency_ms=latency)
        latency = (time.perf_counter() - started) * 1000
        return Health(
            ok=bool(ready),
            detail="ready" if ready else "not ready",
            latency_ms=latency,
        )

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    # --- rebuilding (`Rebuildable`) ---------------------------------------------------

    async def begin_rebuild(self) -> WeaviateVectorIndex:
        """A new collection with the current schema, behind the rebuild alias, with a
        heartbeat kept until the switch (a stale marker, left by a rebuild that was killed,
        is deleted first; a live one means another rebuild runs: refused)."""
        name = generation_name(self._collection, datetime.now(UTC))
        try:
            await self._client.connect()
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"cannot start a rebuild: {_describe(error)}") from error
        if await self._rebuild.stale():
            await self._drop_stale_rebuild()
        elif await self._rebuild.running():
            message = f"another rebuild is running ({self._rebuild_alias} is fresh)"
            raise SearchIndexError(ENGINE, message)
        now = time.time()
        try:
            await self._client.collections.create(
                name,
                description=f"{HEARTBEAT_DESCRIPTION}{now}",
                properties=collection_properties(),
                vector_config=vector_config(),
            )
            await self._client.alias.create(alias_name=self._rebuild_alias, target_collection=name)
        except WeaviateBaseError as error:
            raise SearchIndexError(ENGINE, f"cannot start a rebuild: {_describe(error)}") from error
        self._rebuild.knows(now)

        async def touch() -> None:
            config = self._client.collections.use(name).config
            await config.update(description=f"{HEARTBEAT_DESCRIPTION}{time.time()}")

        self._rebuild.keep_beating(touch)
        rebuilt = WeaviateVectorIndex(self._client, name, self._dimension, owns_client=False)
        rebuilt._builds_for, rebuilt._ready = self._collection, True
        rebuilt._rebuild = RebuildMarker(None)
        return rebuilt

    async def _drop_stale_rebuild(self) -> None:
        """Drop the alias and the collection a killed rebuild left behind."""
        try:
            stale = await self._alias(self._rebuild_alias)
            if stale is not None:
                log.warning("dropping %s, left by a rebuild that stopped beating", stale.collection)
                await self._client.alias.delete(alias_name=self._rebuild_alias)
                await self._client.collections.delete(stale.collection)
        except WeaviateBaseError as error:
            message = f"cannot drop a stale rebuild: {_describe(error)}"
            raise SearchIndexError(ENGINE, message) from error
        self._rebuild.knows(None)

    async def switch_to(self, rebuilt: WeaviateVectorIndex) -> None:
        """Point the collection alias at the rebuilt collection (one call), then drop the
        rebuild alias (writes meanwhile still reach it) and the old collection."""
        self._check_rebuild(rebuilt)
        await self._rebuild.stop_beating()
        try:
            live = await self._client.alias.get(alias_name=self._collection)
            if live is not None:
                await self._client.alias.update(
                    alias_name=self._collection, new_target_collection=rebuilt.collection_name
                )
            else:
                # The first generation is a collection of the alias's name: it must go first.
                if await self._client.collections.exists(self._collection):
                    await self._client.collections.delete(self._collection)
                await self._client.alias.create(
                    alias_name=self._collection, target_collection=rebuilt.collection_name
                )
            await self._client.alias.delete(alias_name=self._rebuild_alias)
            self._ready = False
            self._rebuild.knows(None)
            if live is not None:
                await self._client.collections.delete(live.collection)
        except WeaviateBaseError as error:
            raise SearchIndexError(
                ENGINE, f"cannot switch collections: {_describe(error)}"
            ) from error

    async def discard(self, rebuilt: WeaviateVectorIndex) -> None:
        """Drop the rebuild alias and the rebuilt collection; the live one stays."""
        self._check_rebuild(rebuilt)
        await self._rebuild.stop_beating()
        try:
            await self._client.alias.delete(alias_name=self._rebuild_alias)
            await self._client.collections.delete(rebuilt.collection_name)
        except WeaviateBaseError as error:
            raise SearchIndexError(
                ENGINE, f"cannot drop the rebuild: {_describe(error)}"
            ) from error
        self._rebuild.knows(None)

    def _check_rebuild(self, rebuilt: WeaviateVectorIndex) -> None:
        if rebuilt._builds_for != self._collection:
            message = f"{rebuilt.collection_name} is not a rebuild of {self._collection}"
            raise SearchIndexError(ENGINE, message)
