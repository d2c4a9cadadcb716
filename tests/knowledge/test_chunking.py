"""Chunks are cut per page and keep where they came from."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from copilot.knowledge.chunking import Chunker
from copilot.knowledge.loaders import Page


def _words(text: str) -> int:
    return len(text.split())


def test_every_chunk_keeps_its_pages_number_and_location() -> None:
    pages = [
        Page(None, "Hotels up to 150 euros a night. " * 6, location="4 Travel > 4.2 Hotels"),
        Page(None, "Meals up to 40 euros a day.", location="4 Travel > 4.3 Meals"),
    ]
    drafts = Chunker(_words, size=20, overlap=0).split(pages)
    assert len(drafts) >= 3
    assert {d.location for d in drafts[:-1]} == {"4 Travel > 4.2 Hotels"}
    assert drafts[-1].location == "4 Travel > 4.3 Meals"
    assert drafts[-1].text == "Meals up to 40 euros a day."
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))


def test_headings_are_never_a_chunk_of_their_own() -> None:
    long_paragraph = " ".join(f"word{n}" for n in range(18))
    page = Page(
        None,
        f"# Travel\n\n## Hotels\n\n{long_paragraph}\n\nA tail that is too long.",
        "Travel > Hotels",
    )

    drafts = Chunker(_words, size=20, overlap=0).split([page])

    assert drafts[0].text == f"# Travel\n\n## Hotels\n\n{long_paragraph}"
    assert drafts[0].start == 0 and drafts[-1].text == "A tail that is too long."
    assert all(d.location == "Travel > Hotels" for d in drafts)
    # Alone, the headings stay: there is nothing to join them to.
    assert [d.text for d in Chunker(_words, size=20, overlap=0).split([Page(None, "# Only")])] == [
        "# Only"
    ]


def test_text_cut_into_finer_tokens_is_chunked_by_characters_up_to_the_token_cap() -> None:
    """German needs ~1.5x the word pieces of English for the same characters: chunks are
    bounded by characters so they are not smaller, and by `max_tokens` never larger."""
    text = " ".join(f"wort{i:03d}" for i in range(200))  # 1,599 characters

    def english(piece: str) -> int:
        return -(-len(piece) // 4)

    def german(piece: str) -> int:
        return -(-len(piece) // 2)

    def dense(piece: str) -> int:
        return len(piece)

    def sizes(count: Callable[[str], int]) -> list[int]:
        chunker = Chunker(count, size=10, overlap=0, chars=40, max_tokens=30)
        return [len(d.text) for d in chunker.split([Page(None, text)])]

    assert sizes(german) == sizes(english)  # the same characters, though twice the tokens
    assert max(sizes(english)) <= 40 and min(sizes(english)[:-1]) >= 30
    assert max(sizes(dense)) <= 30  # the token cap
    tokens_only = Chunker(german, size=10, overlap=0).split([Page(None, text)])
    assert len(tokens_only) > 1.5 * len(sizes(german))  # what the character budget avoids


def test_every_chunk_is_tagged_with_its_language() -> None:
    pages = [
        Page(1, "Der Jahresabschluss zum Geschäftsjahr 2020 wurde vom Vorstand aufgestellt."),
        Page(2, "Chính sách công tác phí quy định mức giá phòng khách sạn tối đa."),
        Page(3, "The travel policy limits hotel costs to 150 euros per night."),
        Page(4, "12.5 / 3 = 4.17"),
    ]
    drafts = Chunker(_words, size=50, overlap=0).split(pages)
    assert [d.language for d in drafts] == ["de", "vi", "en", None]


def test_a_token_cap_below_the_size_is_refused() -> None:
    with pytest.raises(ValueError, match="most tokens in a chunk"):
        Chunker(_words, size=128, overlap=16, chars=550, max_tokens=100)
