"""Language-aware keyword search on the embedded engine (tantivy), and language detection.

German is stemmed in its own field, Vietnamese keeps its diacritics in an unfolded field
beside the folded one, a short question is also read in the languages of the knowledge,
and an index of the schema before per-language fields is refused until rebuilt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tantivy

from copilot.search.base import IndexedChunk, SearchIndexError
from copilot.search.keyword_embedded import EmbeddedKeywordIndex, stemming_analyzer
from copilot.search.language import detect_language, is_reliable, query_languages
from copilot.search.scope import AccessScope, ChunkAccess

EVERYONE = AccessScope("alice", None, frozenset({"public"}))
COMPANY = ChunkAccess("alice", "company", None, "public")

GERMAN = "Jahresabschluss zum Geschäftsjahr vom 01.01.2020 bis zum 31.12.2020"
VIETNAMESE = "Chính sách công tác phí quy định mức giá phòng khách sạn tối đa cho nhân viên."
VIETNAMESE_OTHER = "Nhân viên bán hàng được thưởng theo doanh số mỗi quý."
ENGLISH = "The travel policy limits hotel costs to 150 euros per night."


def chunk(chunk_id: str, text: str, language: str | None) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=chunk_id,
        file_id=f"file-{chunk_id}",
        file_name=f"{chunk_id}.md",
        ordinal=0,
        page=None,
        text=text,
        access=COMPANY,
        language=language,
    )


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[EmbeddedKeywordIndex]:
    keyword = EmbeddedKeywordIndex(tmp_path / "keyword")
    await keyword.add(
        [
            chunk("de", GERMAN, "de"),
            chunk("vi", VIETNAMESE, "vi"),
            chunk("vi-other", VIETNAMESE_OTHER, "vi"),
            chunk("en", ENGLISH, "en"),
        ]
    )
    yield keyword
    await keyword.close()


async def found(index: EmbeddedKeywordIndex, question: str) -> list[str]:
    return [hit.chunk_id for hit in await index.search(question, EVERYONE, k=5)]


@pytest.mark.parametrize(
    "question",
    [
        "Wann beginnt der Jahresabschluss des Geschäftsjahres?",
        "Welche Jahresabschlüsse gibt es für die Geschäftsjahre?",
        "Geschäftsjahres",  # one word: too short to detect, read in the knowledge's languages
    ],
)
async def test_german_forms_find_the_german_chunk(
    index: EmbeddedKeywordIndex, question: str
) -> None:
    assert (await found(index, question))[0] == "de"


async def test_german_is_stemmed_not_only_folded(index: EmbeddedKeywordIndex) -> None:
    """Without the German stemmer "Geschäftsjahres" shares no term with "Geschäftsjahr"."""
    assert stemming_analyzer("de").analyze("Geschäftsjahres Jahresabschlüsse") == [
        "geschaftsjahr",
        "jahresabschluss",
    ]
    hits = await index.search("Geschäftsjahres", EVERYONE, k=5)
    assert hits[0].metadata["language"] == "de"


@pytest.mark.parametrize(
    "question",
    [
        "Giá phòng khách sạn tối đa là bao nhiêu?",
        "Gia phong khach san toi da la bao nhieu?",  # typed without diacritics
        "khách sạn",
        "khach san",
    ],
)
async def test_vietnamese_with_and_without_diacritics_finds_it(
    index: EmbeddedKeywordIndex, question: str
) -> None:
    assert (await found(index, question))[0] == "vi"


async def test_vietnamese_diacritics_decide_between_folded_equals(
    index: EmbeddedKeywordIndex,
) -> None:
    """Folded, "bán" (sell) and "ban" are one term; with diacritics the exact word ranks
    first, because the unfolded field matches it too."""
    hits = await index.search("bán hàng", EVERYONE, k=5)
    assert hits[0].chunk_id == "vi-other"


async def test_english_is_still_stemmed(index: EmbeddedKeywordIndex) -> None:
    assert (await found(index, "What do the travel policies say about hotels?"))[0] == "en"


async def test_an_index_of_the_schema_before_languages_is_refused_until_rebuilt(
    tmp_path: Path,
) -> None:
    """Built with access tokens but one English-analysed text field (as shipped before)."""
    folder = tmp_path / "old"
    folder.mkdir()
    builder = tantivy.SchemaBuilder()
    for name in ("chunk_id", "file_id", "file_name", "access", "owner_id", "scope"):
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    for name in ("department_id", "classification"):
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_integer_field("ordinal", stored=True)
    builder.add_integer_field("page", stored=True)
    builder.add_text_field("text", stored=True, tokenizer_name="copilot_english")
    old = tantivy.Index(builder.build(), path=str(folder))
    old.register_tokenizer("copilot_english", stemming_analyzer("en"))
    writer = old.writer(15_000_000, 1)
    document = tantivy.Document()
    for name, value in (("chunk_id", "c1"), ("text", GERMAN), ("access", "company:public")):
        document.add_text(name, value)
    writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()

    index = EmbeddedKeywordIndex(folder)
    try:
        for call in (
            index.search("Geschäftsjahr", EVERYONE, k=3),
            index.add([chunk("x", GERMAN, "de")]),
        ):
            with pytest.raises(SearchIndexError, match="copilot reindex --all") as refused:
                await call
            assert "older schema" in str(refused.value) and "text_de" in str(refused.value)
        await index.clear()  # what `copilot reindex --all` starts with
        await index.add([chunk("de", GERMAN, "de")])
        assert await found(index, "Geschäftsjahres") == ["de"]
    finally:
        await index.close()
    reopened = EmbeddedKeywordIndex(folder)  # the rebuilt index is of the current schema
    try:
        assert await found(reopened, "Jahresabschlüsse") == ["de"]
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (GERMAN, "de"),
        (VIETNAMESE, "vi"),
        (ENGLISH, "en"),
        ("Todos los seres humanos nacen libres e iguales en dignidad y derechos.", "es"),
        ("Nous proposons une méthode pour résumer des logs de requêtes OLAP.", "fr"),
        ("12.5 / 3 = 4.17", None),  # no letters: no language
        ("", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_short_questions_are_also_read_in_the_knowledge_languages() -> None:
    assert is_reliable("What does our travel policy say about hotel costs?")
    assert query_languages("What does our travel policy say about hotel costs?", {"de"}) == ["en"]
    assert not is_reliable("Geschäftsjahr")
    assert query_languages("Geschäftsjahr", {"de", "en"}) == ["de", "en"]
    assert "fr" in query_languages("OLAP", {"fr"})
