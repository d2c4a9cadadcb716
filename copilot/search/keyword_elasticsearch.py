"""BM25 keyword index on Elasticsearch, through the official async client.

The adapter is deliberately thin: the client is injected (the factory owns configuration),
the index is created on first use with an explicit mapping, and every search carries the
caller's `AccessScope` as one `terms` filter on the chunk's access tokens, so unreadable
chunks never leave the engine.

Why not `langchain_elasticsearch.AsyncElasticsearchRetriever` (it accepts a `body_func`)?
It only covers the query side and returns LangChain `Document`s, while the ensemble wraps
our own `KeywordIndex` protocol in a retriever already. Using it would mean translating
Hit -> Document -> Hit and still writing index creation, bulk indexing, deletes, counts and
health by hand, so the official client is used directly.

Rebuilds (`copilot reindex --all`) fill a new index (`<name>-<UTC time>`) beside the live
one, reachable meanwhile through the alias `<name>-rebuild`, and switch with one
`_aliases` call that moves the alias `<name>` to it (searches follow at once, in every
process); the old index is deleted after. The first rebuild turns a concrete index named
`<name>` (what installs had before) into that alias, in the same call (`remove_index`).
While the rebuild alias exists and its index's heartbeat is fresh, writes go to it too;
a stale one, left by a killed rebuild, is deleted by the next rebuild or start
(see copilot.search.rebuild_marker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from elasticsearch.helpers import BulkIndexError, async_bulk

from copilot.search.base import (
    TAGS_FIELD,
    Health,
    Hit,
    IndexedChunk,
    SearchIndexError,
    outdated_index,
)
from copilot.search.language import STEMMED_LANGUAGES, query_languages
from copilot.search.rebuild_marker import RebuildMarker
from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess, access_fields

log = logging.getLogger(__name__)

ENGINE = "elasticsearch"
# The same fields, read the same ways, as the embedded engine (keyword_embedded.py): `text`
# lower-cased and ASCII-folded, its multi-field `text.unfolded` lower-cased only (Vietnamese
# keeps its diacritics), and `text_<code>` with that language's stop words and stemmer,
# filled for chunks in that language only. That copy is in `_source` (twice the stored
# text) because `update_by_query` re-indexes from `_source`: left out, an access change
# would drop the stemmed field.
UNFOLDED_FIELD = "text.unfolded"
TIE_BREAKER = 0.3
LANGUAGES_TTL_SECONDS = 60.0
#: Where the index being rebuilt carries its heartbeat (see copilot.search.rebuild_marker).
HEARTBEAT_META = "copilot_rebuild_heartbeat"


def rebuild_alias(name: str) -> str:
    """The alias of the index being built beside the live one, while a rebuild runs."""
    return f"{name}-rebuild"


def generation_name(name: str, now: datetime) -> str:
    """A new concrete index for the alias `name` (lower-case, as index names must be)."""
    return f"{name}-{now.strftime('%Y%m%dt%H%M%S%f')}"


def stemmed_field(language: str) -> str:
    return f"text_{language}"


def _language_filters() -> dict[str, Any]:
    filters: dict[str, Any] = {
        "copilot_english_possessive": {"type": "stemmer", "language": "possessive_english"}
    }
    for code, name in STEMMED_LANGUAGES.items():
        filters[f"copilot_{code}_stop"] = {"type": "stop", "stopwords": f"_{name}_"}
        filters[f"copilot_{code}_stemmer"] = {"type": "stemmer", "language": name}
    return filters


def _language_analyzers() -> dict[str, Any]:
    analyzers: dict[str, Any] = {
        "copilot_folded": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding"],
        },
        "copilot_unfolded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]},
    }
    for code in STEMMED_LANGUAGES:
        possessive = ["copilot_english_possessive"] if code == "en" else []
        stop, stem = f"copilot_{code}_stop", f"copilot_{code}_stemmer"
        analyzers[f"copilot_{code}"] = {
            "type": "custom",
            "tokenizer": "standard",
            "filter": [*possessive, "lowercase", stop, stem, "asciifolding"],
        }
        # Query-time only: the neutral fields without the question's stop words.
        for name, folding in (("folded", ["asciifolding"]), ("unfolded", [])):
            analyzers[f"copilot_{name}_{code}"] = {
                "type": "custom",
                "tokenizer": "standard",
                "filter": ["lowercase", stop, *folding],
            }
    return analyzers


INDEX_SETTINGS: dict[str, Any] = {
    "analysis": {"filter": _language_filters(), "analyzer": _language_analyzers()}
}

KEYWORD_FIELDS = (
    "chunk_id",
    "file_id",
    ACCESS_FIELD,  # an array of tokens: `terms` matches a document holding any of them
    "owner_id",
    "department_id",
    "scope",
    "classification",
    "language",
    TAGS_FIELD,  # an array of tags: a search given tags keeps chunks holding any of them
)
METADATA_FIELDS = ("owner_id", "scope", "department_id", "classification")
# update_by_query sets the access fields from params: no value is spliced into the script.
UPDATE_ACCESS_SCRIPT = " ".join(
    f"ctx._source.{name} = params.{name};" for name in (ACCESS_FIELD, *METADATA_FIELDS)
)

INDEX_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "text": {
            "type": "text",
            "analyzer": "copilot_folded",
            "fields": {"unfolded": {"type": "text", "analyzer": "copilot_unfolded"}},
        },
        **{
            stemmed_field(code): {"type": "text", "analyzer": f"copilot_{code}"}
            for code in STEMMED_LANGUAGES
        },
        **{name: {"type": "keyword"} for name in KEYWORD_FIELDS},
        "file_name": {
            "type": "text",
            "analyzer": "copilot_folded",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
        },
        "page": {"type": "integer"},
        "ordinal": {"type": "integer"},
    },
}


def access_filter(scope: AccessScope) -> dict[str, Any]:
    """The one access clause: the chunk holds any of the user's tokens (pure, for tests)."""
    return {"terms": {ACCESS_FIELD: scope.sorted_tokens()}}


def tag_filter(tags: Sequence[str]) -> dict[str, Any]:
    """The chunk holds any of the tags searched for (pure, for tests)."""
    return {"terms": {TAGS_FIELD: list(tags)}}


def search_query(
    query: str, scope: AccessScope, languages: Sequence[str], tags: Sequence[str] = ()
) -> dict[str, Any]:
    """BM25 on each way of reading the question (`keyword_embedded.query_terms`: the stemmed
    field of each of `languages`, and both neutral fields without its stop words), the best
    scoring, restricted by the access filter and any tags (filter context: no scoring)."""
    stemmed = [code for code in languages if code in STEMMED_LANGUAGES]
    clauses: list[dict[str, Any]] = [
        {"match": {stemmed_field(code): {"query": query}}} for code in stemmed
    ]
    for suffix in [f"_{code}" for code in stemmed] or [""]:  # "": no stop words
        for field, name in (("text", "folded"), (UNFOLDED_FIELD, "unfolded")):
            analyzer = f"copilot_{name}{suffix}"
            clauses.append({"match": {field: {"query": query, "analyzer": analyzer}}})
    return {
        "bool": {
            "must": [{"dis_max": {"queries": clauses, "tie_breaker": TIE_BREAKER}}],
            "filter": [access_filter(scope), *([tag_filter(tags)] if tags else [])],
        }
    }


def chunk_document(chunk: IndexedChunk) -> dict[str, Any]:
    """The `_source` stored for a chunk (its text once more in its language's field)."""
    stemmed = chunk.language in STEMMED_LANGUAGES
    return {
        "chunk_id": chunk.chunk_id,
        "file_id": chunk.file_id,
        "file_name": chunk.file_name,
        "page": chunk.page,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        "language": chunk.language,
        TAGS_FIELD: list(chunk.tags),
        **({stemmed_field(chunk.language): chunk.text} if stemmed and chunk.language else {}),
        **access_fields(chunk.access),
    }


def hit_from_es(raw: dict[str, Any]) -> Hit:
    """Map one element of `hits.hits` to a `Hit`."""
    source: dict[str, Any] = raw.get("_source") or {}
    page = source.get("page")
    return Hit(
        chunk_id=str(source.get("chunk_id") or raw["_id"]),
        score=float(raw.get("_score") or 0.0),
        file_id=str(source.get("file_id", "")),
        file_name=str(source.get("file_name", "")),
        page=int(page) if page is not None else None,
        ordinal=int(source.get("ordinal") or 0),
        text=str(source.get("text", "")),
        metadata={
            "engine": ENGINE,
            "language": source.get("language"),
            **{name: source.get(name) for name in METADATA_FIELDS},
        },
    )


def _analysis(field: dict[str, Any] | None) -> object:
    """What of a field's mapping decides how it matches: type, analyzer, sub-fields."""
    if field is None:
        return None
    subfields = field.get("fields", {})
    return (
        field.get("type"),
        field.get("analyzer"),
        sorted((name, _analysis(sub)) for name, sub in subfields.items()),  # type: ignore[type-var]
    )


def _describe(error: Exception) -> str:
    """A short, user-presentable description of a client error."""
    if isinstance(error, BulkIndexError):
        first = error.errors[0] if error.errors else {}
        return f"{len(error.errors)} document(s) failed to index: {first}"
    if isinstance(error, ApiError):
        return str(error)  # status, error type and root cause reason
    return f"{type(error).__name__}: {error}"


class ElasticsearchKeywordIndex:
    """`KeywordIndex` on one Elasticsearch index. Owns the injected client (closes it)."""

    name = ENGINE

    def __init__(self, client: AsyncElasticsearch, index: str, *, owns_client: bool = True) -> None:
        self._client = client
        self._index = index
        self._owns_client = owns_client
        self._ready = False
        self._lock = asyncio.Lock()
        # The stemmed languages the chunks are in, and when that was read (monotonic).
        self._languages: tuple[frozenset[str], float] | None = None
        self._rebuild = RebuildMarker(self._rebuild_heartbeat)
        self._builds_for: str | None = None  # set on an index that a rebuild is filling

    @classmethod
    def from_url(
        cls,
        url: str,
        api_key: str | None = None,
        *,
        index: str = "copilot-chunks",
        request_timeout: float = 30.0,
    ) -> ElasticsearchKeywordIndex:
        """Build the client from settings; no connection is made until the first call."""
        client = AsyncElasticsearch(url, api_key=api_key, request_timeout=request_timeout)
        return cls(client, index)

    @property
    def index(self) -> str:
        return self._index

    async def ensure_index(self, *, rebuilding: bool = False) -> None:
        """Create the index with our mapping unless it exists (idempotent, race-safe).

        An index from before access tokens (its mapping has no `access` field) is refused
        with a message naming the fix, rechecked on every call until `copilot reindex
        --all` (here or in another process) has recreated it: searching it would find
        nothing, and the strict mapping would refuse new chunks.
        """
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            try:
                exists = bool(await self._client.indices.exists(index=self._index))
                missing = await self._missing_fields() if exists else set()
                if missing:
                    if not rebuilding:
                        raise outdated_index(ENGINE, missing)
                    await self._client.indices.delete(index=self._index)
                    exists = False
                if await self._rebuild.stale():
                    await self._drop_stale_rebuild()
                if not exists:
                    try:
                        await self._client.indices.create(
                            index=self._index, settings=INDEX_SETTINGS, mappings=INDEX_MAPPINGS
                        )
                    except ApiError as error:
                        # Another process created it between our check and our create.
                        if error.error != "resource_already_exists_exception":
                            raise
            except (ApiError, TransportError) as error:
                raise SearchIndexError(
                    ENGINE, f"cannot create index: {_describe(error)}"
                ) from error
            self._ready = True

    async def _missing_fields(self) -> set[str]:
        """The fields of our mapping that the index lacks or analyses another way (an
        index from before access tokens, or before per-language fields)."""
        response = await self._client.indices.get_mapping(index=self._index)
        mappings: dict[str, Any] = dict(response.body)
        missing: set[str] = set()
        for entry in mappings.values():  # keyed by the concrete index name (or an alias's)
            properties = entry.get("mappings", {}).get("properties", {})
            missing |= {
                name
                for name, wanted in INDEX_MAPPINGS["properties"].items()
                if _analysis(properties.get(name)) != _analysis(wanted)
            }
        return missing if mappings else set(INDEX_MAPPINGS["properties"])

    def _actions(self, chunks: Sequence[IndexedChunk]) -> Iterator[dict[str, Any]]:
        for chunk in chunks:
            yield {
                "_op_type": "index",
                "_index": self._index,
                "_id": chunk.chunk_id,
                "_source": chunk_document(chunk),
            }

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        """Index (or overwrite, keyed by chunk_id); searchable once this returns."""
        if not chunks:
            return
        await self.ensure_index()
        try:
            await async_bulk(self._client, self._actions(chunks), refresh="wait_for")
            self._languages = None
        except (BulkIndexError, ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"bulk index failed: {_describe(error)}") from error
        if await self._rebuild.running():
            await self._add_to_rebuild(chunks)

    async def _add_to_rebuild(self, chunks: Sequence[IndexedChunk]) -> None:
        """The same chunks into the index being rebuilt, through its alias only: one
        switched or discarded meanwhile is not recreated by the write."""
        alias = rebuild_alias(self._index)
        actions = [{**action, "_index": alias} for action in self._actions(chunks)]
        try:
            await async_bulk(self._client, actions, refresh="wait_for", require_alias=True)
        except (BulkIndexError, ApiError, TransportError) as error:
            self._rebuild.forget()
            if await self._rebuild.running():
                message = f"bulk index into the rebuild failed: {_describe(error)}"
                raise SearchIndexError(ENGINE, message) from error

    async def _rebuild_heartbeat(self) -> float | None:
        """The heartbeat in the `_meta` of the rebuild alias's index (None: no alias)."""
        try:
            response = await self._client.indices.get_mapping(index=rebuild_alias(self._index))
        except NotFoundError:
            return None
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"alias lookup failed: {_describe(error)}") from error
        beats = [
            float((entry.get("mappings", {}).get("_meta") or {}).get(HEARTBEAT_META, 0.0))
            for entry in dict(response.body).values()
        ]
        return max(beats, default=0.0)

    def _targets(self, running: bool) -> list[str]:
        return [self._index, rebuild_alias(self._index)] if running else [self._index]

    async def delete_file(self, file_id: str) -> None:
        await self._delete_by_query({"term": {"file_id": file_id}})

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        if chunk_ids:  # a document's _id is its chunk id
            await self._delete_by_query({"ids": {"values": list(chunk_ids)}})

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """One update_by_query over the file's chunks: a painless script sets the access
        fields from params, the text and its analysis stay; refreshed before returning."""
        await self.ensure_index()
        script = {
            "source": UPDATE_ACCESS_SCRIPT,
            "lang": "painless",
            "params": access_fields(access),
        }
        try:
            response = await self._client.update_by_query(
                index=self._targets(await self._rebuild.running()),
                query={"term": {"file_id": file_id}},
                script=script,
                refresh=True,
                conflicts="abort",
                ignore_unavailable=True,
            )
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"access update failed: {_describe(error)}") from error
        failures = response.get("failures") or []
        if failures or response.get("version_conflicts"):
            raise SearchIndexError(
                ENGINE,
                f"access update failed for {len(failures)} document(s) "
                f"({response.get('version_conflicts', 0)} version conflicts)",
            )

    async def clear(self) -> None:
        """Delete every document but keep the index and its mapping (an index from before
        access tokens is recreated with the current mapping)."""
        await self.ensure_index(rebuilding=True)
        await self._delete_by_query({"match_all": {}})

    async def _delete_by_query(self, query: dict[str, Any]) -> None:
        await self.ensure_index()
        try:
            response = await self._client.delete_by_query(
                index=self._targets(await self._rebuild.running()),
                query=query,
                refresh=True,
                conflicts="proceed",
                ignore_unavailable=True,
            )
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"delete failed: {_describe(error)}") from error
        self._languages = None
        failures = response.get("failures") or []
        if failures:
            raise SearchIndexError(ENGINE, f"delete failed for {len(failures)} document(s)")

    async def search(
        self, query: str, scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        if k <= 0 or not query.strip():
            return []
        await self.ensure_index()
        languages = query_languages(query, await self._indexed_languages())
        try:
            response = await self._client.search(
                index=self._index,
                query=search_query(query, scope, languages, tags),
                size=k,
                track_total_hits=False,
            )
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"search failed: {_describe(error)}") from error
        return [hit_from_es(raw) for raw in response["hits"]["hits"]]

    async def _indexed_languages(self) -> frozenset[str]:
        """The stemmed languages of the chunks (a terms aggregation, read at most once a
        minute and after our own writes), for questions too short to tell their own."""
        cached = self._languages
        if cached is not None and time.monotonic() - cached[1] < LANGUAGES_TTL_SECONDS:
            return cached[0]
        try:
            response = await self._client.search(
                index=self._index,
                size=0,
                aggs={"languages": {"terms": {"field": "language", "size": 100}}},
            )
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"search failed: {_describe(error)}") from error
        buckets = response["aggregations"]["languages"]["buckets"]
        languages = frozenset(str(b["key"]) for b in buckets) & set(STEMMED_LANGUAGES)
        self._languages = (languages, time.monotonic())
        return languages

    async def count(self, file_id: str | None = None) -> int:
        await self.ensure_index()
        query = {"term": {"file_id": file_id}} if file_id is not None else {"match_all": {}}
        try:
            response = await self._client.count(index=self._index, query=query)
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"count failed: {_describe(error)}") from error
        return int(response["count"])

    async def health(self) -> Health:
        """Cluster health; green and yellow (a single node has unassigned replicas) are ok."""
        started = time.perf_counter()
        try:
            response = await self._client.cluster.health()
        except (ApiError, TransportError) as error:
            latency = (time.perf_counter() - started) * 1000
            return Health(ok=False, detail=_describe(error), latency_ms=latency)
        latency = (time.perf_counter() - started) * 1000
        status = str(response.get("status", "unknown"))
        cluster = response.get("cluster_name", "?")
        return Health(
            ok=status in ("green", "yellow"),
            detail=f"cluster {cluster} is {status}",
            latency_ms=latency,
        )

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    # --- rebuilding (`Rebuildable`) ---------------------------------------------------

    async def begin_rebuild(self) -> ElasticsearchKeywordIndex:
        """A new index with the current mapping, behind the rebuild alias, with a heartbeat
        kept until the switch (a stale marker, left by a rebuild that was killed, is
        deleted first; a live one means another rebuild runs: refused)."""
        alias = rebuild_alias(self._index)
        name = generation_name(self._index, datetime.now(UTC))
        if await self._rebuild.stale():
            await self._drop_stale_rebuild()
        elif await self._rebuild.running():
            raise SearchIndexError(ENGINE, f"another rebuild is running ({alias} is fresh)")
        now = time.time()
        try:
            await self._client.indices.create(
                index=name,
                settings=INDEX_SETTINGS,
                mappings={**INDEX_MAPPINGS, "_meta": {HEARTBEAT_META: now}},
                aliases={alias: {}},
            )
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"cannot start a rebuild: {_describe(error)}") from error
        self._rebuild.knows(now)

        async def touch() -> None:
            await self._client.indices.put_mapping(index=name, meta={HEARTBEAT_META: time.time()})

        self._rebuild.keep_beating(touch)
        rebuilt = ElasticsearchKeywordIndex(self._client, name, owns_client=False)
        rebuilt._builds_for, rebuilt._ready = self._index, True
        rebuilt._rebuild = RebuildMarker(None)
        return rebuilt

    async def _drop_stale_rebuild(self) -> None:
        """Delete the index a killed rebuild left behind its alias (the alias goes with it)."""
        alias = rebuild_alias(self._index)
        for stale in await self._alias_targets(alias):
            log.warning("deleting %s, left by a rebuild that stopped beating (%s)", stale, alias)
            await self._client.indices.delete(index=stale)
        self._rebuild.knows(None)

    async def switch_to(self, rebuilt: ElasticsearchKeywordIndex) -> None:
        """Move the alias to the rebuilt index in one atomic `_aliases` call."""
        self._check_rebuild(rebuilt)
        await self._rebuild.stop_beating()
        try:
            live = await self._alias_targets(self._index)
            actions: list[dict[str, Any]] = [
                {"remove": {"index": rebuilt.index, "alias": rebuild_alias(self._index)}},
                *({"remove": {"index": name, "alias": self._index}} for name in live),
                {"add": {"index": rebuilt.index, "alias": self._index}},
            ]
            if not live and await self._client.indices.exists(index=self._index):
                # The first generation is a concrete index of the alias's name.
                actions.insert(1, {"remove_index": {"index": self._index}})
            await self._client.indices.update_aliases(actions=actions)
            self._languages, self._ready = None, False
            self._rebuild.knows(None)
            for name in live:
                await self._client.indices.delete(index=name)
        except (ApiError, TransportError) as error:
            raise SearchIndexError(ENGINE, f"cannot switch indexes: {_describe(error)}") from error

    async def discard(self, rebuilt: ElasticsearchKeywordIndex) -> None:
        """Delete the rebuilt index (and its alias with it); the live one stays."""
        self._check_rebuild(rebuilt)
        await self._rebuild.stop_beating()
        try:
            await self._client.indices.delete(index=rebuilt.index)
        except (ApiError, TransportError) as error:
            raise SearchIndexError(
                ENGINE, f"cannot drop the rebuild: {_describe(error)}"
            ) from error
        self._rebuild.knows(None)

    def _check_rebuild(self, rebuilt: ElasticsearchKeywordIndex) -> None:
        if rebuilt._builds_for != self._index:
            raise SearchIndexError(ENGINE, f"{rebuilt.index} is not a rebuild of {self._index}")

    async def _alias_targets(self, alias: str) -> list[str]:
        """The concrete indexes behind an alias (none when there is no such alias)."""
        if not await self._client.indices.exists_alias(name=alias):
            return []
        response = await self._client.indices.get_alias(name=alias)
        return sorted(dict(response.body))
