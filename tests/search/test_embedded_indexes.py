"""The embedded engines (tantivy keyword, LanceDB vector) against the protocol, on disk.

No mocks: every test writes a real index under tmp_path. Access control is checked against
`AccessScope.allows` as the oracle over randomized chunks and scopes, so the engine filters
(a tantivy boolean query, a LanceDB SQL prefilter) must agree with the Python rule exactly.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from copilot.search.base import Hit, IndexedChunk, KeywordIndex, SearchIndexError, VectorIndex
from copilot.search.keyword_embedded import EmbeddedKeywordIndex, query_terms
from copilot.search.scope import AccessScope, ChunkAccess
from copilot.search.vector_embedded import EmbeddedVectorIndex, access_where, sql_string

DIMENSION = 16
USERS = ("alice", "bob", "carol", "dave")
DEPARTMENTS = ("sales", "eng", "o'hara dept")  # a quote must not break SQL quoting
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
VOCABULARY = tuple(f"term{i}" for i in range(12))  # unchanged by stemming and stop words
EVERYTHING = frozenset(CLASSIFICATIONS)

HOSTILE_QUERIES = (
    '"',
    "'",
    "(",
    ")",
    '"unterminated phrase',
    "AND",
    "OR NOT",
    "a AND (b OR",
    "-term1 +term2",
    "*",
    "term*",
    ":",
    "text:term1",
    "chunk_id:*",
    "title:(x OR y)",
    "[a TO z]",
    "IN [term1 term2]",
    "term1^5 term2~2",
    "{}\\/",
    "NEAR(term1 term2)",
    "'; DROP TABLE chunks; --",
    "\x00\x01",
    "🦠 covid-19?",
    "term1 " * 2000,
)


def unit_vector(rng: random.Random) -> list[float]:
    values = [rng.gauss(0.0, 1.0) for _ in range(DIMENSION)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # inputs are unit vectors


def chunk(
    chunk_id: str,
    text: str,
    access: ChunkAccess,
    *,
    file_id: str = "file-1",
    vector: Sequence[float] | None = None,
    ordinal: int = 0,
    page: int | None = 1,
) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=chunk_id,
        file_id=file_id,
        file_name=f"{file_id}.pdf",
        ordinal=ordinal,
        page=page,
        text=text,
        access=access,
        vector=vector,
    )


def company(classification: str = "public") -> ChunkAccess:
    return ChunkAccess("alice", "company", None, classification)


def random_access(rng: random.Random) -> ChunkAccess:
    owner = rng.choice(USERS)
    classification = rng.choice(CLASSIFICATIONS)
    scope = rng.choice(("personal", "department", "company"))
    department = rng.choice(DEPARTMENTS) if scope == "department" else None
    return ChunkAccess(owner, scope, department, classification)


def random_scope(rng: random.Random) -> AccessScope:
    size = rng.randint(0, len(CLASSIFICATIONS))
    return AccessScope(
        user_id=rng.choice((*USERS, "erin")),  # erin owns nothing
        department_id=rng.choice((*DEPARTMENTS, None)),
        classifications=frozenset(rng.sample(CLASSIFICATIONS, size)),
    )


def random_corpus(rng: random.Random, size: int) -> list[IndexedChunk]:
    return [
        chunk(
            f"chunk-{i}",
            " ".join(rng.sample(VOCABULARY, 3)),
            random_access(rng),
            file_id=f"file-{i % 9}",
            vector=unit_vector(rng),
            ordinal=i,
            page=None if i % 4 == 0 else i % 7,
        )
        for i in range(size)
    ]


def ids(hits: Sequence[Hit]) -> list[str]:
    return [hit.chunk_id for hit in hits]


@pytest.fixture
async def keyword_index(tmp_path: Path) -> AsyncIterator[EmbeddedKeywordIndex]:
    index = EmbeddedKeywordIndex(tmp_path / "keyword-index")
    yield index
    await index.close()


@pytest.fixture
async def vector_index(tmp_path: Path) -> AsyncIterator[EmbeddedVectorIndex]:
    index = EmbeddedVectorIndex(tmp_path / "vector-index", DIMENSION)
    yield index
    await index.close()


@pytest.fixture
async def ivf_vector_index(tmp_path: Path) -> AsyncIterator[EmbeddedVectorIndex]:
    """The IVF_FLAT path, trained as soon as the table has 64 rows."""
    index = EmbeddedVectorIndex(tmp_path / "vector-ivf", DIMENSION, index_min_rows=64)
    yield index
    await index.close()


@pytest.fixture(params=["exact", "ivf"])
async def either_vector_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[EmbeddedVectorIndex]:
    """Both search paths: the exact scan of small tables, and IVF_FLAT above 64 rows."""
    min_rows = 64 if request.param == "ivf" else 10_000_000
    index = EmbeddedVectorIndex(tmp_path / "vector-either", DIMENSION, index_min_rows=min_rows)
    yield index
    await index.close()


# --- protocol basics ---------------------------------------------------------------------


def test_both_satisfy_their_protocols(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    assert isinstance(keyword_index, KeywordIndex)
    assert isinstance(vector_index, VectorIndex)


async def test_keyword_add_search_count_delete(keyword_index: EmbeddedKeywordIndex) -> None:
    scope = AccessScope("bob", None, EVERYTHING)
    await keyword_index.add(
        [
            chunk("a1", "Masks reduce transmission of the virus", company(), file_id="a"),
            chunk("a2", "Incubation period is about five days", company(), file_id="a"),
            chunk("b1", "Vaccines reduce severe disease", company("internal"), file_id="b"),
        ]
    )
    assert await keyword_index.count() == 3
    assert await keyword_index.count("a") == 2
    assert await keyword_index.count("missing") == 0

    hits = await keyword_index.search("How do masks reduce transmission?", scope, 10)
    assert ids(hits)[0] == "a1"
    assert set(ids(hits)) == {"a1", "b1"}  # "reduce" matches b1 too
    assert all(hit.score > 0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    top = hits[0]
    assert (top.file_id, top.file_name, top.page, top.ordinal) == ("a", "a.pdf", 1, 0)
    assert top.text == "Masks reduce transmission of the virus"
    assert top.metadata["owner_id"] == "alice"
    assert top.metadata["scope"] == "company"
    assert top.metadata["department_id"] is None
    assert top.metadata["classification"] == "public"

    await keyword_index.delete_file("a")
    assert await keyword_index.count() == 1
    assert await keyword_index.count("a") == 0
    for text in ("Masks reduce transmission of the virus", "Incubation period five days"):
        assert not {"a1", "a2"} & set(ids(await keyword_index.search(text, scope, 10)))


async def test_vector_add_search_count_delete(vector_index: EmbeddedVectorIndex) -> None:
    rng = random.Random(1)
    scope = AccessScope("bob", None, EVERYTHING)
    vectors = {name: unit_vector(rng) for name in ("a1", "a2", "b1")}
    await vector_index.add(
        [
            chunk(name, f"text {name}", company(), file_id=name[0], vector=vector, page=None)
            for name, vector in vectors.items()
        ]
    )
    assert await vector_index.count() == 3
    assert await vector_index.count("a") == 2

    hits = await vector_index.search(vectors["a2"], scope, 2)
    assert ids(hits)[0] == "a2"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].score >= hits[1].score
    assert hits[0].page is None and hits[0].text == "text a2" and hits[0].file_name == "a.pdf"
    assert hits[0].metadata["classification"] == "public"

    await vector_index.delete_file("a")
    assert await vector_index.count() == 1
    assert ids(await vector_index.search(vectors["a2"], scope, 10)) == ["b1"]


async def test_delete_chunks_removes_only_those_chunks(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    """A file's superseded version leaves; its current chunks and other files stay."""
    rng = random.Random(3)
    scope = AccessScope("bob", None, EVERYTHING)
    texts = {"v1-0": "old travel rule", "v2-0": "new travel rule", "b-0": "hotel rule"}
    for index in (keyword_index, vector_index):
        await index.add(
            [
                chunk(name, text, company(), file_id=name[0], vector=unit_vector(rng))
                for name, text in texts.items()
            ]
        )
        await index.delete_chunks(["v1-0", "never-indexed"])
        await index.delete_chunks([])
        assert await index.count() == 2 and await index.count("v") == 1
    assert set(ids(await keyword_index.search("travel rule", scope, 10))) == {"v2-0", "b-0"}
    assert "v1-0" not in ids(await vector_index.search(unit_vector(rng), scope, 10))


async def test_adding_a_chunk_id_again_replaces_it(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    rng = random.Random(2)
    scope = AccessScope("bob", None, EVERYTHING)
    old, new = unit_vector(rng), unit_vector(rng)
    for index in (keyword_index, vector_index):
        await index.add([chunk("c1", "old wording", company(), vector=old)])
        await index.add(
            [
                chunk("c1", "draft wording", company(), vector=old),
                chunk("c1", "new wording", company(), vector=new),  # last copy wins
            ]
        )
        assert await index.count() == 1
    assert ids(await keyword_index.search("old", scope, 5)) == []
    assert ids(await keyword_index.search("new", scope, 5)) == ["c1"]
    hits = await vector_index.search(new, scope, 5)
    assert ids(hits) == ["c1"] and hits[0].text == "new wording"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_empty_query_and_non_positive_k_return_nothing(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    scope = AccessScope("bob", None, EVERYTHING)
    vector = unit_vector(random.Random(3))
    await keyword_index.add([chunk("c1", "term1", company())])
    await vector_index.add([chunk("c1", "term1", company(), vector=vector)])
    assert await keyword_index.search("term1", scope, 0) == []
    assert await keyword_index.search("   ", scope, 5) == []
    assert await keyword_index.search("the of and", scope, 5) == []  # stop words only
    assert await vector_index.search(vector, scope, 0) == []


async def test_wrong_vector_dimension_is_a_search_index_error(
    tmp_path: Path, vector_index: EmbeddedVectorIndex
) -> None:
    scope = AccessScope("bob", None, EVERYTHING)
    with pytest.raises(SearchIndexError):
        await vector_index.add([chunk("c1", "x", company(), vector=[1.0, 0.0])])
    with pytest.raises(SearchIndexError):
        await vector_index.add([chunk("c1", "x", company(), vector=None)])
    with pytest.raises(SearchIndexError):
        await vector_index.search([1.0, 0.0], scope, 5)
    await vector_index.add([chunk("c1", "x", company(), vector=unit_vector(random.Random(4)))])
    await vector_index.close()

    # A new embedding model: the old vectors are refused until clear() rebuilds the table.
    changed = EmbeddedVectorIndex(tmp_path / "vector-index", DIMENSION + 1)
    with pytest.raises(SearchIndexError, match="copilot reindex --all"):
        await changed.search([1.0] * (DIMENSION + 1), scope, 5)
    with pytest.raises(SearchIndexError, match="copilot reindex --all"):
        await changed.count()
    await changed.clear()
    wider = [1.0] + [0.0] * DIMENSION
    await changed.add([chunk("c2", "y", company(), vector=wider)])
    assert [h.chunk_id for h in await changed.search(wider, scope, 5)] == ["c2"]
    await changed.close()


async def test_another_process_sees_new_chunks(
    tmp_path: Path, keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    """`copilot ingest` runs beside the web app: the app's open indexes must see its work."""
    import asyncio
    import sys
    import textwrap

    scope = AccessScope("bob", None, EVERYTHING)
    assert await keyword_index.search("zebra", scope, 5) == []
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from copilot.search.base import IndexedChunk
        from copilot.search.scope import ChunkAccess
        from copilot.search.keyword_embedded import EmbeddedKeywordIndex
        from copilot.search.vector_embedded import EmbeddedVectorIndex
        async def main():
            access = ChunkAccess("alice", "company", None, "internal")
            item = IndexedChunk("z1", "f1", "z.md", 0, None, "zebra crossing rules", access,
                                [1.0] + [0.0] * {DIMENSION - 1})
            keyword = EmbeddedKeywordIndex(Path({str(tmp_path / "keyword-index")!r}))
            vector = EmbeddedVectorIndex(Path({str(tmp_path / "vector-index")!r}), {DIMENSION})
            await keyword.add([item]); await vector.add([item])
            await keyword.close(); await vector.close()
        asyncio.run(main())
    """)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await asyncio.wait_for(process.wait(), 120) == 0
    await asyncio.sleep(1.2)  # the readers look for new commits at most once a second
    assert [h.chunk_id for h in await keyword_index.search("zebra", scope, 5)] == ["z1"]
    vector = [1.0] + [0.0] * (DIMENSION - 1)
    assert [h.chunk_id for h in await vector_index.search(vector, scope, 1)] == ["z1"]


async def test_health_reports_the_chunk_count(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    vector = unit_vector(random.Random(5))
    for index in (keyword_index, vector_index):
        await index.add([chunk(f"c{i}", "term1", company(), vector=vector) for i in range(3)])
        health = await index.health()
        assert health.ok and "3 chunks" in health.detail and health.latency_ms >= 0


async def test_clear_empties_and_the_index_stays_usable(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    rng = random.Random(6)
    scope = AccessScope("bob", None, EVERYTHING)
    corpus = random_corpus(rng, 20)
    for index in (keyword_index, vector_index):
        await index.add(corpus)
        assert await index.count() == 20
        await index.clear()
        assert await index.count() == 0
    assert await keyword_index.search(" ".join(VOCABULARY), scope, 50) == []
    assert await vector_index.search(unit_vector(rng), scope, 50) == []
    for index in (keyword_index, vector_index):
        await index.add(corpus[:2])
        assert await index.count() == 2


async def test_closed_index_refuses_work(tmp_path: Path) -> None:
    keyword = EmbeddedKeywordIndex(tmp_path / "k")
    vector = EmbeddedVectorIndex(tmp_path / "v", DIMENSION)
    for index in (keyword, vector):
        await index.close()
        with pytest.raises(SearchIndexError, match="closed"):
            await index.count()
        assert not (await index.health()).ok


# --- persistence -------------------------------------------------------------------------


async def test_both_indexes_persist_across_close_and_reopen(tmp_path: Path) -> None:
    rng = random.Random(7)
    scope = AccessScope("bob", None, EVERYTHING)
    corpus = random_corpus(rng, 30)
    keyword = EmbeddedKeywordIndex(tmp_path / "keyword-index")
    vector = EmbeddedVectorIndex(tmp_path / "vector-index", DIMENSION)
    for index in (keyword, vector):
        await index.add(corpus)
        await index.delete_file("file-0")
        await index.close()

    expected = sum(1 for c in corpus if c.file_id != "file-0")
    keyword = EmbeddedKeywordIndex(tmp_path / "keyword-index")
    vector = EmbeddedVectorIndex(tmp_path / "vector-index", DIMENSION)
    try:
        for index in (keyword, vector):
            assert await index.count() == expected
            assert await index.count("file-0") == 0
        target = next(c for c in corpus if c.file_id != "file-0" and scope.allows(c.access))
        assert ids(await keyword.search(target.text, scope, 50)).count(target.chunk_id) == 1
        assert target.vector is not None
        assert ids(await vector.search(target.vector, scope, 1)) == [target.chunk_id]
        await keyword.add([chunk("late", "term1 arrival", company())])
        assert "late" in ids(await keyword.search("arrival", scope, 5))
    finally:
        await keyword.close()
        await vector.close()


# --- access control ----------------------------------------------------------------------


async def test_personal_chunk_never_reaches_another_user(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    rng = random.Random(8)
    secret_text = "Alice salary negotiation notes zanzibar"
    secret_vector = unit_vector(rng)
    alices = ChunkAccess("alice", "personal", "eng", "public")
    noise = [
        chunk(f"n{i}", "unrelated zanzibar memo", company(), vector=unit_vector(rng))
        for i in range(5)
    ]
    for index in (keyword_index, vector_index):
        await index.add([chunk("secret", secret_text, alices, vector=secret_vector), *noise])

    # Bob has every classification and alice's department: still not her personal file.
    bob = AccessScope("bob", "eng", EVERYTHING)
    alice = AccessScope("alice", None, frozenset())
    assert "secret" not in ids(await keyword_index.search(secret_text, bob, 100))
    assert "secret" not in ids(await vector_index.search(secret_vector, bob, 100))
    assert ids(await keyword_index.search(secret_text, alice, 1)) == ["secret"]
    assert ids(await vector_index.search(secret_vector, alice, 1)) == ["secret"]


async def test_department_and_classification_rules(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex
) -> None:
    rng = random.Random(9)
    accesses = {
        "eng-internal": ChunkAccess("alice", "department", "eng", "internal"),
        "eng-secret": ChunkAccess("alice", "department", "eng", "secret"),
        "sales-internal": ChunkAccess("alice", "department", "sales", "internal"),
        "company-public": ChunkAccess("alice", "company", None, "public"),
        "company-secret": ChunkAccess("alice", "company", None, "secret"),
    }
    corpus = [
        chunk(name, "policy memo", access, vector=unit_vector(rng))
        for name, access in accesses.items()
    ]
    for index in (keyword_index, vector_index):
        await index.add(corpus)
    query_vector = unit_vector(rng)

    cases = {
        AccessScope("bob", "eng", frozenset({"public", "internal"})): {
            "eng-internal",
            "company-public",
        },
        AccessScope("bob", None, frozenset({"public", "internal", "secret"})): {
            "company-public",
            "company-secret",
        },
        AccessScope("bob", "sales", frozenset()): set(),
        AccessScope("bob", "eng", EVERYTHING): set(accesses) - {"sales-internal"},
    }
    for scope, expected in cases.items():
        assert set(ids(await keyword_index.search("policy", scope, 50))) == expected
        assert set(ids(await vector_index.search(query_vector, scope, 50))) == expected


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_keyword_results_equal_allowed_matching_chunks(
    keyword_index: EmbeddedKeywordIndex, seed: int
) -> None:
    rng = random.Random(seed)
    corpus = random_corpus(rng, 150)
    await keyword_index.add(corpus)
    for _ in range(40):
        scope = random_scope(rng)
        words = rng.sample(VOCABULARY, rng.randint(1, 2))
        hits = await keyword_index.search(" ".join(words), scope, 1000)
        expected = {
            c.chunk_id
            for c in corpus
            if scope.allows(c.access) and set(words) & set(c.text.split())
        }
        assert len(hits) == len(set(ids(hits)))
        assert set(ids(hits)) == expected, (scope, words)
        by_id = {c.chunk_id: c for c in corpus}
        for hit in hits:
            access = by_id[hit.chunk_id].access
            assert hit.metadata["owner_id"] == access.owner_id
            assert hit.metadata["scope"] == access.scope
            assert hit.metadata["department_id"] == access.department_id
            assert hit.metadata["classification"] == access.classification


@pytest.mark.parametrize("seed", [21, 22])
async def test_vector_results_equal_allowed_chunks_in_exact_order(
    request: pytest.FixtureRequest, either_vector_index: EmbeddedVectorIndex, seed: int
) -> None:
    index = either_vector_index
    rng = random.Random(seed)
    corpus = random_corpus(rng, 150)
    for start in range(0, len(corpus), 50):  # several writes, so the IVF path trains
        await index.add(corpus[start : start + 50])
    path = request.node.callspec.params["either_vector_index"]
    expected_path = "IVF_FLAT" if path == "ivf" else "exact scan"
    assert expected_path in (await index.health()).detail
    for _ in range(30):
        scope = random_scope(rng)
        query = unit_vector(rng)
        allowed = [c for c in corpus if scope.allows(c.access)]
        everything = await index.search(query, scope, 1000)
        assert set(ids(everything)) == {c.chunk_id for c in allowed}
        assert len(everything) == len(allowed)

        ranked = sorted(allowed, key=lambda c: cosine(query, c.vector or []), reverse=True)
        top = await index.search(query, scope, 5)
        assert ids(top) == [c.chunk_id for c in ranked[:5]]
        for hit, expected in zip(top, ranked, strict=False):
            assert hit.score == pytest.approx(cosine(query, expected.vector or []), abs=1e-4)


# --- hostile input -----------------------------------------------------------------------


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_hostile_query_strings_do_not_raise(
    keyword_index: EmbeddedKeywordIndex, query: str
) -> None:
    alices = ChunkAccess("alice", "personal", None, "public")
    await keyword_index.add(
        [
            chunk("shared", "term1 term2 covid 19 drop table chunks", company()),
            chunk("private", "term1 term2 covid 19 drop table chunks", alices),
        ]
    )
    hits = await keyword_index.search(query, AccessScope("bob", None, EVERYTHING), 10)
    assert "private" not in ids(hits)
    assert set(ids(hits)) <= {"shared"}


def test_query_terms_are_analysed_words_without_syntax() -> None:
    # Lucene's English stop words (as Elasticsearch's `_english_`): "what" is not one.
    clauses = dict(query_terms('What is "R0" (AND -x*) title:COVID-19 masks?', ["en"]))
    assert clauses["text_en"] == ["what", "r0", "x", "titl", "covid", "19", "mask"]
    # The neutral fields keep the words as written, less the question's stop words.
    words = ["what", "r0", "x", "title", "covid", "19", "masks"]
    assert clauses["text"] == clauses["text_unfolded"] == words
    assert dict(query_terms("'; DROP TABLE --", ["en"]))["text_en"] == ["drop", "tabl"]
    assert query_terms("the of and", ["en"]) == []
    # A language without a stemmer (Vietnamese) is matched on the neutral fields alone,
    # folded and as written.
    assert query_terms("Giá phòng", ["vi"]) == [
        ("text", ["gia", "phong"]),
        ("text_unfolded", ["giá", "phòng"]),
    ]
    # A question read in two languages: each one's stemmed field and stop words.
    fields = [field for field, _ in query_terms("die Kosten der Hotels", ["de", "en"])]
    assert fields == ["text_de", "text_en", "text", "text_unfolded", "text", "text_unfolded"]


@pytest.mark.parametrize(
    "user_id", ["o'brien", "x' OR '1'='1", "\\", "alice' OR scope = 'personal", '"; --']
)
async def test_hostile_scope_values_neither_raise_nor_leak(
    keyword_index: EmbeddedKeywordIndex, vector_index: EmbeddedVectorIndex, user_id: str
) -> None:
    rng = random.Random(31)
    vector = unit_vector(rng)
    alices = ChunkAccess("alice", "personal", None, "public")
    theirs = ChunkAccess(user_id, "personal", user_id, "public")
    corpus = [
        chunk("alices", "term1", alices, vector=vector),
        chunk("theirs", "term1", theirs, vector=vector),
    ]
    for index in (keyword_index, vector_index):
        await index.add(corpus)
    scope = AccessScope(user_id, user_id, frozenset({user_id}))
    assert ids(await keyword_index.search("term1", scope, 10)) == ["theirs"]
    assert ids(await vector_index.search(vector, scope, 10)) == ["theirs"]


def test_access_where_is_one_any_of_clause_on_encoded_tokens() -> None:
    # Quotes inside ids are percent-encoded in the tokens, and literals are quoted anyway.
    scope = AccessScope("o'brien", "r'n'd", frozenset({"it's"}))
    assert access_where(scope) == (
        "array_has_any(access, ['company:it%27s', 'dept:r%27n%27d:it%27s', 'user:o%27brien'])"
    )
    assert sql_string("it's") == "'it''s'"


# --- concurrency -------------------------------------------------------------------------


async def test_concurrent_writes_and_searches(
    keyword_index: EmbeddedKeywordIndex, ivf_vector_index: EmbeddedVectorIndex
) -> None:
    rng = random.Random(41)
    corpus = random_corpus(rng, 240)
    by_id = {c.chunk_id: c for c in corpus}
    scope = AccessScope("bob", "eng", EVERYTHING)
    # 24 writes: the vector index trains IVF_FLAT, then compacts and prunes at write 20.
    batches = [corpus[start : start + 10] for start in range(0, len(corpus), 10)]

    async def searches() -> None:
        for _ in range(25):
            for hit in await keyword_index.search("term1 term2", scope, 5):
                assert scope.allows(by_id[hit.chunk_id].access)
            for hit in await ivf_vector_index.search(unit_vector(rng), scope, 5):
                assert scope.allows(by_id[hit.chunk_id].access)

    await asyncio.gather(
        *(keyword_index.add(batch) for batch in batches),
        *(ivf_vector_index.add(batch) for batch in batches),
        *(searches() for _ in range(4)),
    )
    await asyncio.gather(
        keyword_index.delete_file("file-3"), ivf_vector_index.delete_file("file-3")
    )
    expected = sum(1 for c in corpus if c.file_id != "file-3")
    assert await keyword_index.count() == expected
    assert await ivf_vector_index.count() == expected


async def test_vector_search_waits_for_a_prune_without_blocking_the_loop(
    vector_index: EmbeddedVectorIndex,
) -> None:
    """Searches run on the event loop; while old files are deleted they wait in a thread."""
    rng = random.Random(43)
    corpus = random_corpus(rng, 40)
    await vector_index.add(corpus)
    scope = AccessScope("bob", "eng", EVERYTHING)
    query = unit_vector(rng)
    direct = await vector_index.search(query, scope, 5)
    in_thread = await asyncio.to_thread(vector_index._search, query, scope, 5, ())
    assert ids(direct) == ids(in_thread) and len(direct) == 5

    released = asyncio.Event()
    loop = asyncio.get_running_loop()

    def prune_for_a_while() -> None:
        with vector_index._guard.exclusive():
            loop.call_soon_threadsafe(released.set)
            time.sleep(0.3)

    pruning = asyncio.create_task(asyncio.to_thread(prune_for_a_while))
    await released.wait()
    started = time.perf_counter()
    searching = asyncio.create_task(vector_index.search(query, scope, 5))
    ticks = 0
    while not searching.done():  # the loop keeps running while the search waits
        await asyncio.sleep(0.01)
        ticks += 1
    assert ids(await searching) == ids(direct)
    assert time.perf_counter() - started >= 0.2 and ticks >= 10
    await pruning


async def test_the_access_clause_filters_before_the_nearest_neighbours_are_ranked(
    either_vector_index: EmbeddedVectorIndex,
) -> None:
    """A post-filter would rank the k nearest rows first and could return fewer than k
    readable ones; the plan must apply `array_has_any` below the vector search."""
    index = either_vector_index
    rng = random.Random(5)
    await index.add(random_corpus(rng, 80))
    scope = AccessScope("bob", "eng", EVERYTHING)
    query = EmbeddedVectorIndex._nearest(index._async_table(), unit_vector(rng), scope, 5)
    plan = await query.explain_plan(True)
    search = plan.index("KNNVectorDistance") if "KNNVectorDistance" in plan else plan.index("ANN")
    assert "array_has_any(access" in plan[search:], plan
    assert "array_has_any" not in plan[:search], plan
