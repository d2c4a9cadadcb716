"""Tags in all four engines: a search given tags keeps, inside the engine's query, only the
readable chunks holding any of them; an access change keeps a chunk's tags; an embedded
index from before tags is refused with the usual "run copilot reindex --all" until rebuilt.

The same four engines as the access property test (tantivy and LanceDB on disk, the
Elasticsearch and Weaviate wire fakes that evaluate the filters they are sent).
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from copilot.search.base import IndexedChunk, SearchIndexError, search_tags
from copilot.search.keyword_embedded import EmbeddedKeywordIndex
from copilot.search.scope import AccessScope, ChunkAccess
from copilot.search.vector_embedded import EmbeddedVectorIndex, search_where, table_schema
from tests.security.test_access_rules import (
    DIMENSION,
    EVERYTHING,
    WORD,
    Engines,
    four_engines,
    vector_of,
)

TAGS = ("hr", "finance", "policies/travel", "o'hara")  # a quote must not break SQL quoting
READER = AccessScope("u-reader", "d-eng", frozenset({"public", "internal"}))
ACCESSES = (
    ChunkAccess("u-owner", "company", None, "internal"),  # readable
    ChunkAccess("u-owner", "company", None, "secret"),  # not readable
    ChunkAccess("u-reader", "personal", None, "internal"),  # readable: the reader's own
    ChunkAccess("u-owner", "department", "d-fin", "public"),  # not readable: other dept
)


def tagged_corpus(rng: random.Random, size: int) -> list[IndexedChunk]:
    return [
        IndexedChunk(
            chunk_id=f"c{n}",
            file_id=f"f{n}",
            file_name=f"f{n}.md",
            ordinal=0,
            page=None,
            text=f"{WORD} memo {n}",
            access=rng.choice(ACCESSES),
            vector=vector_of(n),
            tags=tuple(rng.sample(TAGS, rng.randint(0, 2))),
        )
        for n in range(size)
    ]


async def found_by_each(engines: Engines, tags: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for keyword in engines.keyword:
        hits = await keyword.search(WORD, READER, EVERYTHING, tags)
        found[keyword.name] = {hit.chunk_id for hit in hits}
    for vector in engines.vector:
        hits = await vector.search(vector_of(0), READER, EVERYTHING, tags)
        found[vector.name] = {hit.chunk_id for hit in hits}
    return found


async def test_every_engine_filters_by_tags_inside_the_query(tmp_path: Path) -> None:
    rng = random.Random(13)
    corpus = tagged_corpus(rng, 40)
    async with four_engines(tmp_path / "indexes") as engines:
        for index in [*engines.keyword, *engines.vector]:
            await index.add(corpus)
        wanted_sets = [[], ["hr"], ["finance", "o'hara"], ["policies/travel"], ["nobody"]]
        for wanted in wanted_sets:
            expected = {
                c.chunk_id
                for c in corpus
                if READER.allows(c.access) and (not wanted or set(c.tags) & set(wanted))
            }
            for engine, found in (await found_by_each(engines, wanted)).items():
                assert found == expected, (engine, wanted)
        assert expected == set()  # "nobody" tags nothing: the filter is not ignored


async def test_an_access_change_keeps_the_tags_in_every_engine(tmp_path: Path) -> None:
    hidden = ChunkAccess("u-owner", "company", None, "secret")
    chunk = IndexedChunk("c1", "f1", "f1.md", 0, None, f"{WORD} memo", hidden, vector_of(1))
    tagged = replace(chunk, tags=("hr",))
    async with four_engines(tmp_path / "indexes") as engines:
        for index in [*engines.keyword, *engines.vector]:
            await index.add([tagged])
            await index.update_access("f1", ChunkAccess("u-owner", "company", None, "internal"))
        found = await found_by_each(engines, ["hr"])
        assert found == dict.fromkeys(found, {"c1"}) and len(found) == 4
        other = await found_by_each(engines, ["finance"])
        assert other == dict.fromkeys(other, set()) and len(other) == 4


def test_search_tags_are_sorted_unique_and_never_blank() -> None:
    assert search_tags(None) == [] and search_tags(()) == []
    assert search_tags(["hr", " finance ", "hr"]) == ["finance", "hr"]
    with pytest.raises(ValueError, match="blank"):
        search_tags(["hr", "  "])


def test_the_lancedb_prefilter_ands_the_tags_to_the_access_clause() -> None:
    where = search_where(READER, ["hr", "o'hara"])
    assert where.endswith(" AND array_has_any(tags, ['hr', 'o''hara'])")
    assert search_where(READER) == search_where(READER, [])
    assert "tags" not in search_where(READER)


def _keyword_index_without_tags(folder: Path) -> None:
    """A tantivy index of the schema shipped just before tags (every other field)."""
    import tantivy

    from copilot.search import keyword_embedded as module

    builder = tantivy.SchemaBuilder()
    for name in module.RAW_FIELDS:
        if name != "tags":
            builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_integer_field("ordinal", stored=True)
    builder.add_integer_field("page", stored=True)
    builder.add_text_field(module.FOLDED_FIELD, stored=True, tokenizer_name="copilot_folded")
    builder.add_text_field(module.UNFOLDED_FIELD, tokenizer_name="copilot_unfolded")
    for code in module.STEMMED_LANGUAGES:
        builder.add_text_field(module.stemmed_field(code), tokenizer_name=f"copilot_{code}")
    tantivy.Index(builder.build(), path=str(folder))


def _vector_table_without_tags(folder: Path) -> None:
    import lancedb

    schema = table_schema(DIMENSION)
    schema = schema.remove(schema.get_field_index("tags"))
    lancedb.connect(str(folder)).create_table("chunks", schema=schema)


async def test_embedded_indexes_from_before_tags_are_refused_until_cleared(
    tmp_path: Path,
) -> None:
    """Without a `tags` field every tag filter would find nothing: refused, with the fix."""
    chunk = IndexedChunk(
        "c1", "f1", "f1.md", 0, None, f"{WORD} memo", ACCESSES[0], vector_of(1), tags=("hr",)
    )
    (tmp_path / "keyword").mkdir()
    _keyword_index_without_tags(tmp_path / "keyword")
    _vector_table_without_tags(tmp_path / "vector")
    keyword = EmbeddedKeywordIndex(tmp_path / "keyword")
    vector = EmbeddedVectorIndex(tmp_path / "vector", DIMENSION)
    try:
        refused = r"lacks tags.*run `copilot reindex --all`"
        with pytest.raises(SearchIndexError, match=refused):
            await keyword.search(WORD, READER, 5)
        with pytest.raises(SearchIndexError, match=refused):
            await vector.search(vector_of(1), READER, 5)
        for index in (keyword, vector):  # what `copilot reindex --all` does
            await index.clear()
            await index.add([chunk])
        assert [h.chunk_id for h in await keyword.search(WORD, READER, 5, ["hr"])] == ["c1"]
        assert [h.chunk_id for h in await vector.search(vector_of(1), READER, 5, ["hr"])] == ["c1"]
    finally:
        await keyword.close()
        await vector.close()
