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

Text is analysed per language, as in the Elasticsearch adapter (same fields, same filter
chains, same query clauses) so embedded and production rank alike: see `query_terms`.
The figures below are of the single English analyzer shipped before (lower-case, ASCII
folding, English stop words and stemmer). That module (text stored, `Hit`s built),
measured while another session kept the 2 cores busy (load average 4-6), so latencies are inflated:
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
from copilot.search.language import STEMMED_LANGUAGES, query_languages
from copilot.search.scope import ACCESS_FIELD, AccessScope, ChunkAccess, access_fields

ENGINE = "tantivy"
WRITER_HEAP_BYTES = 64_000_000
# tantivy allows one writer per folder across processes and fails at once when another
# holds it (`copilot reindex --all` and the web app both write while a rebuild runs).
WRITER_WAIT_SECONDS = 30.0
# How stale a search may be about commits made by other processes.
REFRESH_SECONDS = 1.0
# Stored verbatim and matched exactly ("raw"): ids, the access tokens (one value each, the
# only field the access filter reads), the access metadata they came from, the language,
# the tags (one value each; an index from before tags is outdated: `_missing_fields`).
RAW_FIELDS = (
    "chunk_id",
    "file_id",
    "file_name",
    ACCESS_FIELD,
    "owner_id",
    "scope",
    "department_id",
    "classification",
    "language",
    TAGS_FIELD,
)
METADATA_FIELDS = ("owner_id", "scope", "department_id", "classification")
# Each chunk's text is analysed three ways: `text` (stored; lower-cased and ASCII-folded,
# any language), `text_unfolded` (lower-cased only, so Vietnamese "bán" and "ban" differ)
# and, for a language with a stemmer, `text_<code>` (that language's stop words and
# stemmer). A question is matched on the same fields, analysed the same ways.
FOLDED_FIELD = "text"
UNFOLDED_FIELD = "text_unfolded"
# The best field's score counts, the others' a little (a match with its diacritics, and
# in its stemmed form, ranks above a folded one).
TIE_BREAKER = 0.3


def stemmed_field(language: str) -> str:
    return f"text_{language}"


def _tokens() -> tantivy.TextAnalyzerBuilder:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(
        tantivy.Filter.remove_long(40)
    )


def stemming_analyzer(language: str) -> tantivy.TextAnalyzer:
    """A language's analyzer, as Elasticsearch's `copilot_<code>`: lower-case, its stop
    words, its Snowball stemmer, then ASCII folding (the stemmers read the diacritics)."""
    name = STEMMED_LANGUAGES[language]
    return (
        _tokens()
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword(name))
        .filter(tantivy.Filter.stemmer(name))
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def neutral_analyzer(*, fold: bool, stop_languages: Sequence[str] = ()) -> tantivy.TextAnalyzer:
    """Words as written, lower-cased, ASCII-folded or not; a question's own stop words are
    dropped at query time (`stop_languages`), never from the index."""
    builder = _tokens().filter(tantivy.Filter.lowercase())
    for language in stop_languages:
        if language in STEMMED_LANGUAGES:
            builder = builder.filter(tantivy.Filter.stopword(STEMMED_LANGUAGES[language]))
    if fold:
        builder = builder.filter(tantivy.Filter.ascii_fold())
    return builder.build()


def _analyzers() -> dict[str, tantivy.TextAnalyzer]:
    """Tokenizer name -> analyzer, registered on every open (tantivy does not persist them)."""
    return {
        "copilot_folded": neutral_analyzer(fold=True),
        "copilot_unfolded": neutral_analyzer(fold=False),
        **{f"copilot_{code}": stemming_analyzer(code) for code in STEMMED_LANGUAGES},
    }


def build_schema() -> tantivy.Schema:
    """Raw fields for ids and access, integers for position, analysed text for BM25."""
    builder = tantivy.SchemaBuilder()
    for name in RAW_FIELDS:
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_integer_field("ordinal", stored=True)
    builder.add_integer_field("page", stored=True)
    builder.add_text_field(FOLDED_FIELD, stored=True, tokenizer_name="copilot_folded")
    builder.add_text_field(UNFOLDED_FIELD, tokenizer_name="copilot_unfolded")
    for code in STEMMED_LANGUAGES:
        builder.add_text_field(stemmed_field(code), tokenizer_name=f"copilot_{code}")
    return builder.build()


#: Adjacent question words found within PHRASE_SLOP positions of each other in a chunk add
#: PHRASE_BOOST times their phrase's BM25 score (a sequential-dependence bigram). COVID-QA,
#: all 1,380 questions, chosen on the even-numbered ones: keyword nDCG@10 0.613 -> 0.631,
#: ensemble 0.647 -> 0.663. Elasticsearch does not have it yet.
PHRASE_BOOST = 0.5
PHRASE_SLOP = 4


def query_pairs(terms: Sequence[str]) -> list[tuple[str, str]]:
    """Each pair of adjacent index terms of one clause of the question, once, in order."""
    return list(dict.fromkeys((a, b) for a, b in zip(terms, terms[1:], strict=False) if a != b))


# Field -> tokenizer ("" for integers): what an index of the current schema holds.
SCHEMA_FIELDS: dict[str, str] = {
    **dict.fromkeys(RAW_FIELDS, "raw"),
    "ordinal": "",
    "page": "",
    FOLDED_FIELD: "copilot_folded",
    UNFOLDED_FIELD: "copilot_unfolded",
    **{stemmed_field(code): f"copilot_{code}" for code in STEMMED_LANGUAGES},
}


def query_terms(query: str, languages: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The user's question as index terms, one (field, terms) clause per way it is read:
    the stemmed field of each of `languages` that has one, and both neutral fields without
    that language's stop words (as written, for a language without a stemmer). Each clause
    is scored on its own and the best counts (see `TIE_BREAKER`); Elasticsearch's adapter
    builds the same clauses (`keyword_elasticsearch.search_query`).

    No query parser is involved: quotes, parentheses, `AND`, `-`, `*` and `field:` are
    just separators or stop words here, and the terms are ORed as plain term queries.
    Fresh analyzers per call keep this safe from any thread.
    """
    stemmed = [code for code in languages if code in STEMMED_LANGUAGES]
    clauses = [(stemmed_field(code), stemming_analyzer(code).analyze(query)) for code in stemmed]
    for stop in [[code] for code in stemmed] or [[]]:
        for field, fold in ((FOLDED_FIELD, True), (UNFOLDED_FIELD, False)):
            clauses.append((field, neutral_analyzer(fold=fold, stop_languages=stop).analyze(query)))
    unique: dict[tuple[str, tuple[str, ...]], None] = {}
    for field, terms in clauses:
        if terms:
            unique[(field, tuple(dict.fromkeys(terms)))] = None
    return [(field, list(terms)) for field, terms in unique]


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
        # An index of an older schema (before access tokens, before per-language fields)
        # opens, so that `copilot reindex --all` can rebuild it, but refuses everything
        # else until then; `_missing` names the fields it lacks.
        self._missing = _missing_fields(path)
        self._write_lock = threading.Lock()
        self._index = self._open(path)
        self._searcher: tantivy.Searcher | None = self._index.searcher()
        self._fresh_at = time.monotonic()
        self._languages: frozenset[str] | None = None  # of the chunks, read once per commit

    def _open(self, path: Path) -> tantivy.Index:
        try:
            if self._missing:
                index = tantivy.Index.open(str(path))
            else:
                index = tantivy.Index(self._schema, path=str(path), reuse=True)
        except Exception as error:
            raise SearchIndexError(ENGINE, f"cannot open index at {path}: {error}") from error
        for name, analyzer in _analyzers().items():
            index.register_tokenizer(name, analyzer)
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

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        if chunk_ids:
            await self._run("delete", self._write, lambda w: _delete_terms(w, chunk_ids))

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        """tantivy cannot change a document in place: the file's documents are rebuilt
        from their own stored fields with the new access and replace the old ones in one
        commit (nothing is read from the database, nothing is embedded)."""
        await self._run("update access", self._write, lambda w: self._reaccess(w, file_id, access))

    async def clear(self) -> None:
        if self._missing:
            await self._run("clear", self._recreate)
            return
        await self._run("clear", self._write, lambda writer: writer.delete_all_documents())

    async def search(
        self, query: str, scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        if k <= 0 or not query.strip():
            return []
        return await self._run("search", self._search, query, scope, k, tags)

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
            writer = self._writer()
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
            self._languages = None

    def _writer(self) -> tantivy.IndexWriter:
        """The folder's writer, waiting while another process holds it."""
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while True:
            try:
                return self._index.writer(WRITER_HEAP_BYTES, 1)
            except ValueError as error:
                if "LockBusy" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def _recreate(self) -> None:
        """Replace an index of the old schema by an empty one of the current schema."""
        with self._write_lock:
            self._require_open(allow_outdated=True)
            for entry in self._path.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            self._missing = frozenset()
            self._index = self._open(self._path)
            self._searcher = self._index.searcher()
            self._languages = None

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
        def first(field: str) -> str | None:
            value = stored.get_first(field)
            return None if value is None else str(value)

        page = stored.get_first("page")
        return EmbeddedKeywordIndex._document(
            IndexedChunk(
                chunk_id=first("chunk_id") or "",
                file_id=first("file_id") or "",
                file_name=first("file_name") or "",
                ordinal=int(stored.get_first("ordinal") or 0),
                page=None if page is None else int(page),
                text=first(FOLDED_FIELD) or "",
                access=access,
                language=first("language"),
                tags=tuple(str(tag) for tag in stored.get_all(TAGS_FIELD)),
            )
        )

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
            FOLDED_FIELD: chunk.text,
            UNFOLDED_FIELD: chunk.text,
        }.items():
            document.add_text(field, value)
        if chunk.language is not None:
            document.add_text("language", chunk.language)
            if chunk.language in STEMMED_LANGUAGES:
                document.add_text(stemmed_field(chunk.language), chunk.text)
        EmbeddedKeywordIndex._add_access(document, chunk.access)
        for tag in chunk.tags:
            document.add_text(TAGS_FIELD, tag)
        document.add_integer("ordinal", chunk.ordinal)
        if chunk.page is not None:
            document.add_integer("page", chunk.page)
        return document

    def _access_filter(self, scope: AccessScope) -> Query:
        """The one access clause: any of the user's tokens, scored 0 (no effect on BM25)."""
        tokens = Query.term_set_query(self._schema, ACCESS_FIELD, scope.sorted_tokens())
        return Query.const_score_query(tokens, 0.0)

    def _tag_filter(self, tags: Sequence[str]) -> Query:
        """Any of the tags searched for, scored 0, like the access clause."""
        held = Query.term_set_query(self._schema, TAGS_FIELD, list(tags))
        return Query.const_score_query(held, 0.0)

    def _phrase(self, field: str, pair: tuple[str, str]) -> Query:
        """Two adjacent question terms near each other in the field (see PHRASE_BOOST)."""
        phrase = Query.phrase_query(self._schema, field, list(pair), PHRASE_SLOP)
        return Query.boost_query(phrase, PHRASE_BOOST)

    def _search(self, question: str, scope: AccessScope, k: int, tags: Sequence[str]) -> list[Hit]:
        searcher = self._require_open()
        languages = query_languages(question, self._indexed_languages(searcher))
        per_field = [
            Query.boolean_query(
                [(Occur.Should, Query.term_query(self._schema, field, term)) for term in terms]
                + [(Occur.Should, self._phrase(field, pair)) for pair in query_pairs(terms)]
            )
            for field, terms in query_terms(question, languages)
        ]
        if not per_field:
            return []
        best_field = Query.disjunction_max_query(per_field, tie_breaker=TIE_BREAKER)
        clauses = [(Occur.Must, best_field), (Occur.Must, self._access_filter(scope))]
        if tags:
            clauses.append((Occur.Must, self._tag_filter(tags)))
        query = Query.boolean_query(clauses)
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
            text=first(FOLDED_FIELD) or "",
            metadata={
                "engine": ENGINE,
                "language": first("language"),
                **{field: first(field) for field in METADATA_FIELDS},
            },
        )

    def _indexed_languages(self, searcher: tantivy.Searcher) -> frozenset[str]:
        """The languages the chunks are in (one count per stemmed language), for questions
        too short to tell their own. Unstemmed languages are matched by the neutral fields
        whichever languages are queried, so only the stemmed ones are counted."""
        languages = self._languages
        if languages is None:
            languages = self._languages = frozenset(
                code
                for code in STEMMED_LANGUAGES
                if searcher.search(Query.term_query(self._schema, "language", code), 1).hits
            )
        return languages

    def _count(self, file_id: str | None) -> int:
        searcher = self._require_open()
        if file_id is None:
            return int(searcher.num_docs)
        query = Query.term_query(self._schema, "file_id", file_id)
        result = searcher.search(query, 1, count=True)
        return int(result.count or 0)  # type: ignore[attr-defined]  # missing from the stub

    def _require_open(self, *, allow_outdated: bool = False) -> tantivy.Searcher:
        searcher = self._searcher
        if searcher is None:
            raise SearchIndexError(ENGINE, "index is closed")
        if self._missing and not allow_outdated:
            searcher = self._reopen_if_rebuilt()
        # Another process (`copilot ingest` next to the web app) may have committed since:
        # pick up new commits at most once a second.
        if time.monotonic() - self._fresh_at > REFRESH_SECONDS:
            self._index.reload()
            searcher = self._searcher = self._index.searcher()
            self._fresh_at = time.monotonic()
            self._languages = None
        return searcher

    def _reopen_if_rebuilt(self) -> tantivy.Searcher:
        """Another process (`copilot reindex --all`) may have rebuilt the folder since."""
        if time.monotonic() - self._fresh_at > REFRESH_SECONDS:
            self._fresh_at = time.monotonic()
            missing = _missing_fields(self._path)
            if not missing:
                self._missing = missing
                self._index = self._open(self._path)
                self._searcher = self._index.searcher()
                self._languages = None
                return self._searcher
            self._missing = missing
        raise outdated_index(ENGINE, self._missing)

    def _close(self) -> None:
        with self._write_lock:
            self._searcher = None


def _missing_fields(path: Path) -> frozenset[str]:
    """The fields of the current schema that an existing index lacks or analyses another
    way (none for a new index)."""
    meta = path / "meta.json"
    if not meta.is_file():
        return frozenset()
    fields = {
        field["name"]: field["options"].get("indexing", {}).get("tokenizer", "")
        for field in json.loads(meta.read_text())["schema"]
    }
    return frozenset(
        name for name, tokenizer in SCHEMA_FIELDS.items() if fields.get(name) != tokenizer
    )


def _delete_terms(writer: tantivy.IndexWriter, chunk_ids: Sequence[str]) -> None:
    for chunk_id in chunk_ids:
        writer.delete_documents_by_term("chunk_id", chunk_id)
