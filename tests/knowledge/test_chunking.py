"""Chunks are cut per page and keep where they came from."""

from __future__ import annotations

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
