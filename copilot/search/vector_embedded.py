"""Cosine nearest-neighbour index on LanceDB, in a folder under the data dir (no server).

Chosen over sqlite-vec (through pysqlite3-binary) by measurement on 2 cores: COVID-QA's
2,904 chunks embedded with all-MiniLM-L6-v2 (384 dims), and 101,640 = those vectors
replicated 35 times with N(0, 0.01) noise, renormalised, with random access fields; 300
question vectors with random scopes, k=10, the access filter inside the query (a LanceDB
SQL prefilter; for sqlite-vec a vec0 metadata column with `IN`). Bulk build:

    engine, search path              chunks    build     disk     p50     p95   vs exact
    LanceDB, flat                     2,904   0.16 s     6 MB    7.8 ms  13.5 ms   1.00
    sqlite-vec vec0 float             2,904   0.25 s     8 MB    2.9 ms   3.6 ms   1.00
    LanceDB, flat                   101,640    2.3 s   217 MB   312 ms   438 ms    1.00
    sqlite-vec vec0 float           101,640    8.3 s   301 MB   118 ms   180 ms    1.00
    sqlite-vec vec0 int8            101,640    8.5 s    48 MB*   84 ms   140 ms    0.98
    LanceDB IVF_FLAT, >=20 probes   101,640  +2.6 s   358 MB    34 ms    42 ms    1.00
    LanceDB IVF_HNSW_SQ, refine 5   101,640   +55 s   277 MB    34 ms    38 ms    0.98
    LanceDB IVF_PQ, refine 20       101,640   +91 s   280 MB    28 ms    44 ms    0.93
    (* vectors only. "vs exact": recall@10 against NumPy brute force under the same
    filter. Both exact engines on COVID-QA, unfiltered: R@10 0.592, MRR@10 0.366.)

sqlite-vec is exact but has no ANN index in 0.1.9 and its wheel is built without SIMD
(`vec_debug()` lists no AVX flags), so 180 ms p95 at 100k alone breaks the 150 ms hybrid
budget; it also needs pysqlite3-binary here (Linux-only wheels) because this Python's
sqlite3 cannot load extensions, and its KNN only pushes AND-ed column constraints, so the
access rule's OR needs a derived key column. LanceDB takes the rule as a prefilter in SQL,
has IVF indexes, and ships wheels for Linux, macOS and Windows (+446 MB with pyarrow).

Its flat scan is slow (~2.4 us/row here), so tables stay unindexed and exact below
`INDEX_MIN_ROWS`, and get IVF_FLAT above it: raw vectors (no quantisation error), built in
seconds. Probing is adaptive (at least `MIN_PROBES` partitions, more while fewer than k
allowed rows turn up), so a narrow filter ("only my personal files", 1.5% of rows) still
gets k hits: recall 1.00, p95 23 ms. Caveats: the replicated vectors flatter IVF (copies
cluster); on the real COVID-QA vectors IVF_FLAT keeps 0.97 of the exact top 10, and on
structureless random vectors 0.44 (IVF's worst case). A rebuild (`clear`, `add`) retrains.

This module as shipped, measured while another session kept the 2 cores busy (load
average 4-6), so latencies are inflated: 2,904 chunks added one file per call: 2.2 s,
6.4 MB, p50 15 ms, p95 22 ms (exact); 101,640 chunks in 35 calls: 28.7 s with IVF
training and compaction, 358 MB after pruning, p50 61 ms, p95 102 ms.

Searches await the async table inside LanceDB's sync one on the caller's event loop: the
sync API would hop to a worker thread and from there to LanceDB's own loop thread. On
3,018 chunks, k=50, 300 queries interleaved in one process with the cores busy (load
average ~6.5): p50 13.7 -> 12.7 ms, p95 31.9 -> 28.5 ms. Reading the filter's four
access columns or fewer result columns, `to_arrow` or `to_list`, made no measurable
difference; the prefilter itself costs ~3-5 ms there, an `IN` on one derived key column
saved ~3 ms of it, not worth a schema change. (Those runs filtered on the four access
columns; the filter is now one `array_has_any` on the `access` token list, checked to run
below the vector search in the query plan, a prefilter, both exact and with IVF_FLAT.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.background_loop import LOOP
from lancedb.index import IvfFlat
from lancedb.query import AsyncVectorQuery
from lancedb.table import AsyncTable

from copilot.search.base import (
    TAGS_FIELD,
    Health,
    Hit,
    IndexedChunk,
    P,
    R,
    SearchIndexError,
    outdated_index,
    run_blocking,
)
from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess, access_fields

log = logging.getLogger(__name__)

ENGINE = "lancedb"
TABLE = "chunks"
VECTOR = "vector"
REFRESH_INTERVAL = timedelta(seconds=1)
PRUNE_GRACE = timedelta(minutes=10)
INDEX_MIN_ROWS = 10_000  # flat scan ~2.4 us/row: beyond this an index pays off
MIN_PROBES = 20
RETRAIN_GROWTH = 4  # re-cluster once the table is this many times its size at training
OPTIMIZE_EVERY_WRITES = 20  # LanceDB's rule of thumb; folds new rows into the index
KEEP_EVERY_VERSION = timedelta(days=36_500)  # optimize() without pruning
METADATA_COLUMNS = ("owner_id", "scope", "department_id", "classification")
RESULT_COLUMNS = [
    "chunk_id",
    "file_id",
    "file_name",
    "page",
    "ordinal",
    "text",
    *METADATA_COLUMNS,
    "_distance",
]


def table_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("file_id", pa.string(), nullable=False),
            pa.field("file_name", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("ordinal", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("owner_id", pa.string()),
            pa.field("scope", pa.string()),
            pa.field("department_id", pa.string()),
            pa.field("classification", pa.string()),
            pa.field(ACCESS_FIELD, pa.list_(pa.string())),  # filtered on in every search
            pa.field(TAGS_FIELD, pa.list_(pa.string())),  # filtered on when tags are given
            pa.field(VECTOR, pa.list_(pa.float32(), dimension)),
        ]
    )


#: Chunk ids named in one delete filter at most (a superseded version's, in slices).
DELETE_BATCH = 500


def sql_string(value: str) -> str:
    """A DataFusion SQL string literal (quotes doubled), for values inside filters."""
    return "'" + value.replace("'", "''") + "'"


def access_where(scope: AccessScope) -> str:
    """The one access clause as the SQL prefilter of a LanceDB query (pure, for tests):
    the chunk's token list holds any of the user's tokens."""
    tokens = ", ".join(sql_string(token) for token in scope.sorted_tokens())
    return f"array_has_any({ACCESS_FIELD}, [{tokens}])"


def search_where(scope: AccessScope, tags: Sequence[str] = ()) -> str:
    """The whole prefilter: the access clause, and with `tags` the chunk holds any of them."""
    if not tags:
        return access_where(scope)
    held = ", ".join(sql_string(tag) for tag in tags)
    return f"{access_where(scope)} AND array_has_any({TAGS_FIELD}, [{held}])"


#: Columns an older table may lack; one without them is refused until `clear()`.
REQUIRED_COLUMNS = (ACCESS_FIELD, TAGS_FIELD)


def missing_columns(schema: pa.Schema) -> frozenset[str]:
    return frozenset(name for name in REQUIRED_COLUMNS if name not in schema.names)


def access_sql(access: ChunkAccess) -> dict[str, str]:
    """The access columns as SQL values for `update` (its Python values cannot hold an
    empty list: LanceDB fails to infer its type)."""

    def literal(value: str | list[str] | None) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, list):
            return f"arrow_cast(make_array({', '.join(map(sql_string, value))}), 'List(Utf8)')"
        return sql_string(value)

    return {name: literal(value) for name, value in access_fields(access).items()}


class _ReadersOrPruner:
    """Searches and writes share the table (Lance readers see one committed version each);
    deleting old versions' files, or dropping the table, must wait for them and run alone."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive)
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()

    def try_enter_shared(self) -> bool:
        """Enter as a reader without waiting (for the event loop); False while excluded."""
        with self._condition:
            if self._exclusive:
                return False
            self._active += 1
            return True

    def leave_shared(self) -> None:
        with self._condition:
            self._active -= 1
            self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # no new readers from here on
            self._condition.wait_for(lambda: self._active == 0)
        try:
            yield
        finally:
            with self._condition:
                self._exclusive = False
                self._condition.notify_all()


class EmbeddedVectorIndex:
    """`VectorIndex` on one LanceDB table in `path`. One instance per folder and process.

    Writes are serialised by a lock; searches run concurrently with them, and only
    maintenance that deletes files (pruning old versions, `clear`) excludes searches.
    """

    name = ENGINE

    def __init__(self, path: Path, dimension: int, *, index_min_rows: int = INDEX_MIN_ROWS) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._dimension = dimension
        self._index_min_rows = index_min_rows
        self._write_lock = threading.Lock()
        self._guard = _ReadersOrPruner()
        self._writes_since_optimize = 0
        try:
            # Other processes (`copilot ingest` next to the web app) write too: every read
            # looks for a newer table version at most once a second.
            self._db = lancedb.connect(str(path), read_consistency_interval=REFRESH_INTERVAL)
            try:
                self._table = self._db.open_table(TABLE)
            except ValueError:  # not created yet
                self._table = self._db.create_table(TABLE, schema=table_schema(dimension))
        except Exception as error:
            raise SearchIndexError(ENGINE, f"cannot open table at {path}: {error}") from error
        # Vectors of another dimension (a new embedding model), or a table from before
        # access tokens or tags: unusable until `clear()` recreates the table, which
        # `copilot reindex --all` does.
        self._stored_dimension = self._table.schema.field(VECTOR).type.list_size
        self._missing = missing_columns(self._table.schema)
        self._checked_tokens_at = time.monotonic()
        # Rows the partitions were trained on is not stored; the size at open is close enough.
        self._trained_rows = self._table.count_rows() if self._has_index() else 0
        self._closed = False

    # --- protocol ----------------------------------------------------------------------

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        """Insert, or overwrite by chunk_id; searchable once this returns."""
        if chunks:
            await self._run("add", self._add, chunks)

    async def delete_file(self, file_id: str) -> None:
        await self._run("delete", self._delete, f"file_id = {sql_string(file_id)}")

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for start in range(0, len(chunk_ids), DELETE_BATCH):
            listed = ", ".join(sql_string(c) for c in chunk_ids[start : start + DELETE_BATCH])
            await self._run("delete", self._delete, f"chunk_id IN ({listed})")

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """An in-place update of the access columns; vectors and text stay as they are."""
        await self._run("update access", self._update_access, file_id, access)

    async def clear(self) -> None:
        await self._run("clear", self._clear)

    async def search(
        self, vector: Sequence[float], scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        if k <= 0:
            return []
        if len(vector) != self._dimension:
            message = f"query vector has {len(vector)} dims, not {self._dimension}"
            raise SearchIndexError(ENGINE, message)
        query_vector = [float(x) for x in vector]
        if not self._guard.try_enter_shared():  # files are being pruned: wait in a thread
            return await self._run("search", self._search, query_vector, scope, k, tags)
        try:
            self._require_open()
            nearest = self._nearest(self._async_table(), query_vector, scope, k, tags)
            rows = await nearest.to_list()
        except SearchIndexError:
            raise
        except Exception as error:
            raise SearchIndexError(ENGINE, f"search failed: {error}") from error
        finally:
            self._guard.leave_shared()
        return [self._hit(row) for row in rows]

    async def count(self, file_id: str | None = None) -> int:
        where = None if file_id is None else f"file_id = {sql_string(file_id)}"
        return await self._run("count", self._count, where)

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            detail = await self._run("health", self._describe)
        except SearchIndexError as error:
            return Health(False, str(error), (time.perf_counter() - started) * 1000)
        return Health(True, detail, (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    # --- blocking work, run in a thread ------------------------------------------------

    async def _run(self, action: str, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await run_blocking(ENGINE, action, work, *args, **kwargs)

    def _arrow_rows(self, chunks: Sequence[IndexedChunk]) -> pa.Table:
        latest = list({chunk.chunk_id: chunk for chunk in chunks}.values())  # last copy wins
        flat: list[float] = []
        for chunk in latest:
            if chunk.vector is None or len(chunk.vector) != self._dimension:
                size = None if chunk.vector is None else len(chunk.vector)
                message = f"chunk {chunk.chunk_id}: {size} dims, expected {self._dimension}"
                raise SearchIndexError(ENGINE, message)
            flat.extend(chunk.vector)
        columns: dict[str, Any] = {
            "chunk_id": [c.chunk_id for c in latest],
            "file_id": [c.file_id for c in latest],
            "file_name": [c.file_name for c in latest],
            "page": [c.page for c in latest],
            "ordinal": [c.ordinal for c in latest],
            "text": [c.text for c in latest],
            TAGS_FIELD: [list(c.tags) for c in latest],
            **{
                name: [access_fields(c.access)[name] for c in latest]
                for name in (*METADATA_COLUMNS, ACCESS_FIELD)
            },
            VECTOR: pa.FixedSizeListArray.from_arrays(
                pa.array(flat, pa.float32()), self._dimension
            ),
        }
        return pa.table(columns, schema=table_schema(self._dimension))

    def _add(self, chunks: Sequence[IndexedChunk]) -> None:
        rows = self._arrow_rows(chunks)
        with self._write_lock:
            with self._guard.shared():
                self._require_open()
                (
                    self._table.merge_insert("chunk_id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(rows)
                )
            self._maintain()

    def _update_access(self, file_id: str, access: ChunkAccess) -> None:
        with self._write_lock:
            with self._guard.shared():
                # Vectors of another dimension do not matter here (nor to a delete): a
                # rebuild for a new model takes these from processes on the old one.
                self._require_open(rebuilding=True)
                self._table.update(
                    where=f"file_id = {sql_string(file_id)}", values_sql=access_sql(access)
                )
            self._maintain()

    def _delete(self, where: str) -> None:
        with self._write_lock:
            with self._guard.shared():
                self._require_open(rebuilding=True)
                self._table.delete(where)
            self._maintain()

    def _maintain(self) -> None:
        """Index once big enough, re-cluster after large growth, compact every few writes.

        Runs under the write lock; building an index does not disturb running searches.
        """
        rows = self._table.count_rows()
        if rows >= self._index_min_rows and (
            not self._has_index() or rows >= RETRAIN_GROWTH * self._trained_rows
        ):
            partitions = max(1, round(math.sqrt(rows)))
            config = IvfFlat(distance_type="cosine", num_partitions=partitions)
            self._table.create_index(VECTOR, config=config, replace=True)
            self._trained_rows = rows
        self._writes_since_optimize += 1
        if self._writes_since_optimize >= OPTIMIZE_EVERY_WRITES:
            self._optimize()

    def _optimize(self) -> None:
        """Compact fragments and fold new rows into the index while searches go on, then
        delete the superseded files with searches held off (that part takes ~50 ms).

        Another handle on the table (a process writing the generation being rebuilt too)
        may have compacted it first: that conflict is left to the next compaction."""
        try:
            self._table.optimize(cleanup_older_than=KEEP_EVERY_VERSION)
            self._prune()
        except RuntimeError as error:
            if "commit conflict" not in str(error):
                raise
            log.info("compaction skipped, another writer compacted first: %s", error)
        self._writes_since_optimize = 0

    def _prune(self) -> None:
        # Versions are kept for a grace period: a reader in another process may still be
        # on one (in this process the guard holds searches off while files go).
        with self._guard.exclusive():
            self._table.optimize(cleanup_older_than=PRUNE_GRACE)

    def _clear(self) -> None:
        with self._write_lock, self._guard.exclusive():
            self._require_open(rebuilding=True)
            if self._stored_dimension != self._dimension or self._missing:
                self._db.drop_table(TABLE)
                self._table = self._db.create_table(TABLE, schema=table_schema(self._dimension))
                self._stored_dimension = self._dimension
                self._missing = frozenset()
            else:
                # Keep the table: another process reading it keeps working.
                self._table.delete("true")
            self._trained_rows = 0
            self._writes_since_optimize = 0

    def _async_table(self) -> AsyncTable:
        """The async table inside the sync one (LanceDB's sync API runs it on a loop thread
        of its own): the same object, so the same versions and the same refreshes."""
        inner = getattr(self._table, "_table", None)
        if not isinstance(inner, AsyncTable):
            raise SearchIndexError(ENGINE, f"unexpected LanceDB table type {type(inner)}")
        return inner

    @staticmethod
    def _nearest(
        table: AsyncTable,
        vector: list[float],
        scope: AccessScope,
        k: int,
        tags: Sequence[str] = (),
    ) -> AsyncVectorQuery:
        return (
            table.query()
            .nearest_to(vector)
            .column(VECTOR)
            .distance_type("cosine")
            .where(search_where(scope, tags))  # async queries prefilter unless told otherwise
            .minimum_nprobes(MIN_PROBES)
            .maximum_nprobes(0)  # keep probing while a narrow filter leaves < k rows
            .select(RESULT_COLUMNS)
            .limit(k)
        )

    def _search(
        self, vector: list[float], scope: AccessScope, k: int, tags: Sequence[str]
    ) -> list[Hit]:
        """The same query from a thread, for when searches have to wait for a prune."""
        with self._guard.shared():
            self._require_open()
            nearest = self._nearest(self._async_table(), vector, scope, k, tags)
            rows = LOOP.run(nearest.to_list())
        return [self._hit(row) for row in rows]

    @staticmethod
    def _hit(row: dict[str, Any]) -> Hit:
        return Hit(
            chunk_id=row["chunk_id"],
            score=1.0 - float(row["_distance"]),  # cosine similarity
            file_id=row["file_id"],
            file_name=row["file_name"] or "",
            page=row["page"],
            ordinal=int(row["ordinal"] or 0),
            text=row["text"] or "",
            metadata={"engine": ENGINE, **{name: row[name] for name in METADATA_COLUMNS}},
        )

    def _count(self, where: str | None) -> int:
        with self._guard.shared():
            self._require_open()
            return int(self._table.count_rows(where))

    def _describe(self) -> str:
        with self._guard.shared():
            self._require_open()
            search = "IVF_FLAT index" if self._has_index() else "exact scan"
            return f"{self._table.count_rows()} chunks, {search}"

    def _has_index(self) -> bool:
        return any(VECTOR in index.columns for index in self._table.list_indices())

    def _require_open(self, *, rebuilding: bool = False) -> None:
        if self._closed:
            raise SearchIndexError(ENGINE, "index is closed")
        if self._stored_dimension != self._dimension and not rebuilding:
            raise SearchIndexError(
                ENGINE,
                f"the index holds {self._stored_dimension}-dimension vectors but the embedding "
                f"model makes {self._dimension}: run `copilot reindex --all`",
            )
        if self._missing and not rebuilding and not self._rebuilt_elsewhere():
            raise outdated_index(ENGINE, self._missing)

    def _rebuilt_elsewhere(self) -> bool:
        """Whether another process (`copilot reindex --all`) has recreated the table with
        every required column since; looked up at most once a second while it lacks one."""
        now = time.monotonic()
        if now - self._checked_tokens_at < REFRESH_INTERVAL.total_seconds():
            return False
        self._checked_tokens_at = now
        table = self._db.open_table(TABLE)
        if missing_columns(table.schema):
            return False
        self._table, self._missing = table, frozenset()
        return True

    def _close(self) -> None:
        with self._write_lock:
            if not self._closed and self._writes_since_optimize:
                self._optimize()
            with self._guard.exclusive():
                self._closed = True
