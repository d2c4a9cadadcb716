"""BM25 keyword index on tantivy, in a folder under the data dir (no server needed).

Chosen over SQLite FTS5 (stdlib, `bm25()`) by measurement on 2 cores: COVID-QA's 98
papers cut into 1,000-char windows with 200 overlap (2,904 chunks), and the same replicated
35 times with fresh ids and random access fields (101,640); 300 questions with random
scopes, k=10, the access filter inside the query (an SQL WHERE joined to the FTS5 match;
a tantivy boolean query). Bulk build in one transaction / commit:

    engine, tokenizer       chunks    build     disk     p50      p95     R@10  MRR@10
    FTS5 unicode61           2,904   0.17 s     6 MB    2.1 ms   3.6 ms  0.796  0.592
    tantivy default          2,904   0.11 s   1.4 MB*   0.4 ms   0.5 ms  0.804  0.598
    FTS5 porter              2,904   0.17 s     6 MB    2.1 ms   3.5 ms  0.795  0.598
    tantivy en_stem          2,904   0.38 s   1.2 MB*   0.4 ms   4.5 ms  0.796  0.607
    FTS5 unicode61         101,640    8.6 s   160 MB   69 ms   113 ms
    tantivy default        101,640    2.7 s    34 MB*   2.3 ms   3.2 ms
    FTS5 porter            101,640    8.8 s   162 MB   77 ms   138 ms
    tantivy en_stem        101,640   12.7 s    33 MB*   2.8 ms   7.4 ms
    (* text not stored in that run; FTS5 stores it. R@10/MRR@10: all 1,380 answerable
    questions, no filter; a chunk is relevant if it holds its paper's answer_start.)

Both score with BM25 (k1=1.2, b=0.75) and split on Unicode letters/digits, lower-cased
(unicode61 also folds diacritics; tantivy's default drops tokens over 40 bytes), so quality
is equal within noise. Latency is not: a question ORs ~8-12 terms and FTS5 scores every
chunk matching any of them before `ORDER BY bm25() LIMIT k` (p95 113 ms at 100k, still
41 ms with stop words stripped from the question), most of the 150 ms hybrid budget;
tantivy stays at a few ms. Cost: one wheel (+17 MB), a writer lock per index folder, and
tokenizers are not persisted, so ours is registered on every open.

The analyzer mirrors the Elasticsearch adapter's `copilot_english` (lower-case, ASCII
folding, Lucene's English stop words, English stemmer) so embedded and production rank
alike. This module as shipped (that analyzer, text stored, `Hit`s built), measured while
another session kept the 2 cores busy (load average 4-6), so latencies are inflated:
2,904 chunks added one file per call (98 commits): 12.8 s, 2.7 MB, p50 3.1 ms, p95 6.6 ms,
R@10 0.801, MRR@10 0.599; 101,640 chunks in 35 calls: 20.6 s, 84 MB, p50 4.4 ms,
p95 9.7 ms. Each `add` commits (fsync), ~25-40 ms: batch files when rebuilding.
(Those runs filtered with a boolean query over four access fields; the filter is now one
term-set query on the raw, multi-valued `access` token field.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import tantivy
from tantivy import Occur, Query

from copilot.search.base import (
    Health,
    Hit,
    IndexedChunk,
    P,
    R,
    SearchIndexError,
    built_without_access_tokens,
    run_blocking,
)
from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess, access_fields

ENGINE = "tantivy"
ANALYZER = "copilot_english"
WRITER_HEAP_BYTES = 64_000_000
# How stale a search may be about commits made by other processes.
REFRESH_SECONDS = 1.0
# Stored verbatim and matched exactly ("raw"): ids, the access tokens (one value each, the
# only field the access filter reads) and the access metadata they came from.
RAW_FIELDS = (
    "chunk_id",
    "file_id",
    "file_name",
    ACCESS_FIELD,
    "owner_id",
    "scope",
    "department_id",
    "classification",
)
METADATA_FIELDS = ("owner_id", "scope", "department_id", "classification")


def english_analyzer() -> tantivy.TextAnalyzer:
    """Elasticsearch's `copilot_english` rebuilt from tantivy filters, for parity."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def build_schema() -> tantivy.Schema:
    """Raw fields for ids and access, integers for position, analysed text for BM25."""
    builder = tantivy.SchemaBuilder()
    for name in RAW_FIELDS:
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_integer_field("ordinal", stored=True)
    builder.add_integer_field("page", stored=True)
    builder.add_text_field("text", stored=True, tokenizer_name=ANALYZER)
    return builder.build()


#: Adjacent question words found within PHRASE_SLOP positions of each other in a chunk add
#: PHRASE_BOOST times their phrase's BM25 score (a sequential-dependence bigram). COVID-QA,
#: all 1,380 questions, chosen on the even-numbered ones: keyword nDCG@10 0.613 -> 0.631,
#: ensemble 0.647 -> 0.663. Elasticsearch does not have it yet.
PHRASE_BOOST = 0.5
PHRASE_SLOP = 4


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Each pair of adjacent index terms of the question, once, in order."""
    tokens = english_analyzer().analyze(query)
    return list(dict.fromkeys((a, b) for a, b in zip(tokens, tokens[1:], strict=False) if a != b))


def query_terms(query: str) -> list[str]:
    """The user's question as index terms, through the same analyzer as the chunk text.

    No query parser is involved: quotes, parentheses, `AND`, `-`, `*` and `field:` are
    just separators or stop words here, and the terms are ORed as plain term queries.
    A fresh analyzer per call (~8 us) keeps this safe from any thread.
    """
    return list(dict.fromkeys(english_analyzer().analyze(query)))


class EmbeddedKeywordIndex:
    """`KeywordIndex` on a tantivy index in `path`. One instance per folder and process.

    Writes are serialised (tantivy allows one writer per index) and each commits before it
    returns; searches run without the lock on the latest committed searcher snapshot.
    """

    name = ENGINE

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._schema = build_schema()
        # An index from before access tokens has another schema: it opens (so that
        # `copilot reindex --all` can rebuild it) but refuses everything else until then.
        self._without_tokens = _lacks_access_field(path)
        self._write_lock = threading.Lock()
        self._index = self._open(path)
        self._searcher: tantivy.Searcher | None = self._index.searcher()
        self._fresh_at = time.monotonic()

    def _open(self, path: Path) -> tantivy.Index:
        try:
            if self._without_tokens:
                index = tantivy.Index.open(str(path))
            else:
                index = tantivy.Index(self._schema, path=str(path), reuse=True)
        except Exception as error:
            raise SearchIndexError(ENGINE, f"cannot open index at {path}: {error}") from error
        index.register_tokenizer(ANALYZER, english_analyzer())
        return index

    # --- protocol ----------------------------------------------------------------------

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        """Index, or overwrite by chunk_id; searchable once this returns."""
        if chunks:
            await self._run("add", self._write, lambda writer: self._add_to(writer, chunks))

    async def delete_file(self, file_id: str) -> None:
        await self._run(
            "delete", self._write, lambda w: w.delete_documents_by_term("file_id", file_id)
        )

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """tantivy cannot change a document in place: the file's documents are rebuilt
        from their own stored fields with the new access and replace the old ones in one
        commit (nothing is read from the database, nothing is embedded)."""
        await self._run("update access", self._write, lambda w: self._reaccess(w, file_id, access))

    async def clear(self) -> None:
        if self._without_tokens:
            await self._run("clear", self._recreate)
            return
        await self._run("clear", self._write, lambda writer: writer.delete_all_documents())

    async def search(self, query: str, scope: AccessScope, k: int) -> list[Hit]:
        terms = query_terms(query)
        if k <= 0 or not terms:
            return []
        return await self._run("search", self._search, terms, query_pairs(query), scope, k)

    async def count(self, file_id: str | None = None) -> int:
        return await self._run("count", self._count, file_id)

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            chunks = await self.count()
        except SearchIndexError as error:
            return Health(False, str(error), (time.perf_counter() - started) * 1000)
        return Health(True, f"{chunks} chunks", (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        """Wait for a running write, then refuse further calls."""
        await asyncio.to_thread(self._close)

    # --- blocking work, run in a thread ------------------------------------------------

    async def _run(self, action: str, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await run_blocking(ENGINE, action, work, *args, **kwargs)

    def _write(self, edit: Callable[[tantivy.IndexWriter], object]) -> None:
        with self._write_lock:
            self._require_open()
            writer = self._index.writer(WRITER_HEAP_BYTES, 1)
            try:
                edit(writer)
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            finally:
                writer.wait_merging_threads()  # also releases the index's writer lock
            self._index.reload()
            self._searcher = self._index.searcher()

    def _recreate(self) -> None:
        """Replace an index of the old schema by an empty one of the current schema."""
        with self._write_lock:
            self._require_open(allow_without_tokens=True)
            for entry in self._path.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            self._without_tokens = False
            self._index = self._open(self._path)
            self._searcher = self._index.searcher()

    def _reaccess(self, writer: tantivy.IndexWriter, file_id: str, access: ChunkAccess) -> None:
        searcher = self._require_open()
        query = Query.term_query(self._schema, "file_id", file_id)
        found = searcher.search(query, 1, count=True).count or 0  # type: ignore[attr-defined]
        if not found:
            return
        documents = [searcher.doc(address) for _, address in searcher.search(query, found).hits]
        writer.delete_documents_by_term("file_id", file_id)
        for stored in documents:
            writer.add_document(self._with_access(stored, access))

    @staticmethod
    def _with_access(stored: tantivy.Document, access: ChunkAccess) -> tantivy.Document:
        document = tantivy.Document()
        for field in ("chunk_id", "file_id", "file_name", "text"):
            value = stored.get_first(field)
            if value is not None:
                document.add_text(field, str(value))
        for field in ("ordinal", "page"):
            number = stored.get_first(field)
            if number is not None:
                document.add_integer(field, int(number))
        EmbeddedKeywordIndex._add_access(document, access)
        return document

    @staticmethod
    def _add_access(document: tantivy.Document, access: ChunkAccess) -> None:
        for field, value in access_fields(access).items():
            for item in value if isinstance(value, list) else [value]:
                if item is not None:  # absent fields match no term query
                    document.add_text(field, item)

    def _add_to(self, writer: tantivy.IndexWriter, chunks: Sequence[IndexedChunk]) -> None:
        for chunk in chunks:
            # A delete only hits documents added before it, so this replaces any old copy.
            writer.delete_documents_by_term("chunk_id", chunk.chunk_id)
            writer.add_document(self._document(chunk))

    @staticmethod
    def _document(chunk: IndexedChunk) -> tantivy.Document:
        document = tantivy.Document()
        for field, value in {
            "chunk_id": chunk.chunk_id,
            "file_id": chunk.file_id,
            "file_name": chunk.file_name,
            "text": chunk.text,
        }.items():
            document.add_text(field, value)
        EmbeddedKeywordIndex._add_access(document, chunk.access)
        document.add_integer("ordinal", chunk.ordinal)
        if chunk.page is not None:
            document.add_integer("page", chunk.page)
        return document

    def _access_filter(self, scope: AccessScope) -> Query:
        """The one access clause: any of the user's tokens, scored 0 (no effect on BM25)."""
        tokens = Query.term_set_query(self._schema, ACCESS_FIELD, scope.sorted_tokens())
        return Query.const_score_query(tokens, 0.0)

    def _search(
        self, terms: list[str], pairs: list[tuple[str, str]], scope: AccessScope, k: int
    ) -> list[Hit]:
        searcher = self._require_open()
        clauses = [(Occur.Should, Query.term_query(self._schema, "text", term)) for term in terms]
        clauses += [
            (
                Occur.Should,
                Query.boost_query(
                    Query.phrase_query(self._schema, "text", list(pair), PHRASE_SLOP), PHRASE_BOOST
                ),
            )
            for pair in pairs
        ]
        any_term = Query.boolean_query(clauses)
        query = Query.boolean_query(
            [(Occur.Must, any_term), (Occur.Must, self._access_filter(scope))]
        )
        return [
            self._hit(score, searcher.doc(address))
            for score, address in searcher.search(query, k).hits
        ]

    @staticmethod
    def _hit(score: float, document: tantivy.Document) -> Hit:
        def first(field: str) -> str | None:
            value = document.get_first(field)
            return None if value is None else str(value)

        page = document.get_first("page")
        return Hit(
            chunk_id=first("chunk_id") or "",
            score=float(score),
            file_id=first("file_id") or "",
            file_name=first("file_name") or "",
            page=None if page is None else int(page),
            ordinal=int(document.get_first("ordinal") or 0),
            text=first("text") or "",
            metadata={"engine": ENGINE, **{field: first(field) for field in METADATA_FIELDS}},
        )

    def _count(self, file_id: str | None) -> int:
        searcher = self._require_open()
        if file_id is None:
            return int(searcher.num_docs)
        query = Query.term_query(self._schema, "file_id", file_id)
        result = searcher.search(query, 1, count=True)
        return int(result.count or 0)  # type: ignore[attr-defined]  # missing from the stub

    def _require_open(self, *, allow_without_tokens: bool = False) -> tantivy.Searcher:
        searcher = self._searcher
        if searcher is None:
            raise SearchIndexError(ENGINE, "index is closed")
        if self._without_tokens and not allow_without_tokens:
            searcher = self._reopen_if_rebuilt()
        # Another process (`copilot ingest` next to the web app) may have committed since:
        # pick up new commits at most once a second.
        if time.monotonic() - self._fresh_at > REFRESH_SECONDS:
            self._index.reload()
            searcher = self._searcher = self._index.searcher()
            self._fresh_at = time.monotonic()
        return searcher

    def _reopen_if_rebuilt(self) -> tantivy.Searcher:
        """Another process (`copilot reindex --all`) may have rebuilt the folder since."""
        if time.monotonic() - self._fresh_at > REFRESH_SECONDS:
            self._fresh_at = time.monotonic()
            if not _lacks_access_field(self._path):
                self._without_tokens = False
                self._index = self._open(self._path)
                self._searcher = self._index.searcher()
                return self._searcher
        raise built_without_access_tokens(ENGINE)

    def _close(self) -> None:
        with self._write_lock:
            self._searcher = None


def _lacks_access_field(path: Path) -> bool:
    """True for an existing index whose schema has no access tokens field."""
    meta = path / "meta.json"
    if not meta.is_file():
        return False
    fields = {field["name"] for field in json.loads(meta.read_text())["schema"]}
    return ACCESS_FIELD not in fields
