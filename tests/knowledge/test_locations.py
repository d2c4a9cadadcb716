"""Every chunk records where it is: PDF page, PPTX slide and title, heading path for Word,
HTML and Markdown, row range for CSV; through the parser worker and the chunker."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from pptx import Presentation

from copilot.knowledge.chunking import ChunkDraft, Chunker
from copilot.knowledge.loaders import LoadedDocument, load_document, load_document_isolated
from tests.conftest import FIXTURES

needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")


def _words(text: str) -> int:
    return len(text.split())


def _chunks(document: LoadedDocument, size: int = 40) -> list[ChunkDraft]:
    return Chunker(_words, size=size, overlap=0).split(document.pages)


def _location_of(drafts: list[ChunkDraft], phrase: str) -> str | None:
    """The location of the chunks holding ``phrase`` (there must be one)."""
    [location] = {d.location for d in drafts if phrase in d.text}
    return location


def _travel_policy(path: Path) -> Path:
    word = docx.Document()
    word.add_heading("Expense policy", level=0)  # the Title style
    word.add_paragraph("This policy covers every expense of employees.")
    word.add_heading("4 Travel", level=1)
    word.add_heading("4.1 Flights", level=2)
    word.add_paragraph("Book economy class for flights under six hours.")
    word.add_heading("4.2 Hotels", level=2)
    word.add_paragraph("Hotel costs are refunded up to 150 euros a night.")
    word.add_heading("5 Meals", level=1)
    word.add_paragraph("Meals are refunded up to 30 euros a day.")
    word.save(str(path))
    return path


def test_docx_chunks_carry_their_heading_path(tmp_path: Path) -> None:
    path = _travel_policy(tmp_path / "policy.docx")

    drafts = _chunks(load_document_isolated(path))  # the worker keeps the locations

    # The Title style is a level-1 heading, so a chapter heading takes its place.
    assert _location_of(drafts, "150 euros") == "4 Travel > 4.2 Hotels"
    assert _location_of(drafts, "economy class") == "4 Travel > 4.1 Flights"
    assert _location_of(drafts, "30 euros") == "5 Meals"
    assert _location_of(drafts, "every expense") == "Expense policy"
    # A heading with no text of its own is not a chunk: it leads the section after it.
    assert not any(d.text.strip() == "# 4 Travel" for d in drafts)
    assert all(d.page is None for d in drafts)


def test_docx_unstyled_headings_numbered_like_styled_ones_are_headings(tmp_path: Path) -> None:
    # A handbook pasted together from copies: the first has heading styles, the later ones
    # the same all-capitals numbered headings as plain paragraphs.
    word = docx.Document()
    word.add_paragraph("CHAPTER 9 – CONTENTS")  # a contents page, before any styled heading
    word.add_heading("CHAPTER 1 – INTRODUCTION", level=1)
    word.add_heading("A.\tPURPOSE", level=2)
    word.add_heading("1.\tSCOPE", level=3)
    word.add_paragraph("The handbook explains the duties of a trustee.")
    word.add_paragraph("CHAPTER 6 – BUDGETS")
    word.add_paragraph("A.\tANNUAL AND AMENDED BUDGETS\t")
    word.add_paragraph("3.\tOPERATING EXPENSE LINE ITEMS")
    word.add_paragraph("p.\tTravel: This line item includes charges for official travel.")
    word.add_paragraph("1. NOTE THAT THIS IS SHOUTED BUT ENDS WITH A PERIOD.")
    path = tmp_path / "handbook.docx"
    word.save(str(path))

    drafts = _chunks(load_document_isolated(path), size=200)

    assert _location_of(drafts, "official travel") == (
        "CHAPTER 6 – BUDGETS > A. ANNUAL AND AMENDED BUDGETS > 3. OPERATING EXPENSE LINE ITEMS"
    )
    assert _location_of(drafts, "duties of a trustee") == (
        "CHAPTER 1 – INTRODUCTION > A. PURPOSE > 1. SCOPE"
    )
    # Nothing is learnt before the first styled heading, and a sentence is no heading.
    assert _location_of(drafts, "CONTENTS") is None
    assert _location_of(drafts, "SHOUTED") == _location_of(drafts, "official travel")


def test_docx_without_heading_styles_infers_no_headings(tmp_path: Path) -> None:
    word = docx.Document()
    word.add_paragraph("CHAPTER 6 – BUDGETS")
    word.add_paragraph("Every trustee submits a budget.")
    path = tmp_path / "plain.docx"
    word.save(str(path))

    assert _location_of(_chunks(load_document_isolated(path)), "submits a budget") is None


@needs_fixtures
def test_handbook_sections_are_cited_by_chapter_and_section() -> None:
    document = load_document(FIXTURES / "handbook-872p.docx")

    drafts = _chunks(document, size=120)

    opening = "# CHAPTER 1 – INTRODUCTION\n\n## A. PURPOSE\n\nThe United States Trustee appoints"
    purpose = next(d for d in drafts if d.text.startswith(opening))
    assert purpose.location == "CHAPTER 1 – INTRODUCTION > A. PURPOSE"
    # (The handbook repeats this paragraph in chapter 7; its first place is chapter 3.)
    claims = next(d for d in drafts if "the standing trustee to examine proofs" in d.text)
    assert claims.location == (
        "CHAPTER 3 - ADMINISTRATION OF CHAPTER 13 CASES > D. CLAIMS > "
        "1. REVIEW, POSTING, AND OBJECTION - GENERALLY"
    )
    # Its later copies have no heading styles; their numbered capitals still are headings.
    travel = [d.location for d in drafts if "Travel: This line item includes" in d.text]
    assert travel == 4 * [
        "CHAPTER 6 - BUDGETS > A. ANNUAL AND AMENDED BUDGETS > 3. OPERATING EXPENSE LINE ITEMS"
    ]
    # Only the cover and table of contents, before the first heading, have no location.
    unlocated = [d for d in drafts if d.location is None]
    assert unlocated == drafts[: len(unlocated)]
    assert "# CHAPTER" not in " ".join(d.text for d in unlocated)
    assert len(unlocated) < len(drafts) / 20


def test_html_chunks_carry_their_heading_path(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Travel policy</title></head><body>"
        "<h1>Travel</h1><p>Travel needs approval.</p>"
        "<h2>Hotels</h2><p>Hotel costs are refunded up to 150 euros a night.</p>"
        "<h3>Abroad</h3><p>Abroad the limit is 200 euros.</p>"
        "<h2>Trains</h2><p>Take second class.</p></body></html>"
    )
    path = tmp_path / "travel.html"
    path.write_text(html)

    drafts = _chunks(load_document(path))

    assert _location_of(drafts, "150 euros") == "Travel > Hotels"
    assert _location_of(drafts, "200 euros") == "Travel > Hotels > Abroad"
    assert _location_of(drafts, "second class") == "Travel > Trains"


def test_markdown_chunks_carry_their_heading_path(tmp_path: Path) -> None:
    markdown = (
        "Intro before any heading.\n\n"
        "# Handbook\n\n## Travel\n\nHotel costs up to 150 euros.\n\n"
        "```\n# not a heading, a shell comment\nmake run\n```\n\n"
        "Setext section\n--------------\n\nUnderlined headings count too.\n"
    )
    path = tmp_path / "handbook.md"
    path.write_text(markdown)

    drafts = _chunks(load_document(path))

    assert _location_of(drafts, "Intro before") is None
    assert _location_of(drafts, "150 euros") == "Handbook > Travel"
    assert _location_of(drafts, "shell comment") == "Handbook > Travel"
    assert _location_of(drafts, "Underlined") == "Handbook > Setext section"


@needs_fixtures
def test_markdown_table_fixture_is_located_by_nothing_it_lacks() -> None:
    # simple-table.md has no heading: its chunk has no location rather than a made-up one.
    drafts = _chunks(load_document(FIXTURES / "simple-table.md"))
    assert drafts and all(d.location is None for d in drafts)
    assert any("Juicy Apples" in d.text for d in drafts)


def test_pptx_chunks_carry_slide_number_and_title(tmp_path: Path) -> None:
    presentation = Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Roadmap 2026"
    first.placeholders[1].text = "Ship citations to the exact place."
    untitled = presentation.slides.add_slide(presentation.slide_layouts[6])
    box = untitled.shapes.add_textbox(0, 0, 100, 100)
    box.text_frame.text = "A slide without a title."
    path = tmp_path / "deck.pptx"
    presentation.save(str(path))

    drafts = _chunks(load_document_isolated(path))

    [on_first] = [d for d in drafts if "exact place" in d.text]
    assert (on_first.page, on_first.location) == (1, "Roadmap 2026")
    [on_second] = [d for d in drafts if "without a title" in d.text]
    assert (on_second.page, on_second.location) == (2, None)


def test_csv_chunks_carry_the_rows_they_hold(tmp_path: Path) -> None:
    rows = ["item,price"] + [f"item {n},{n}.99" for n in range(1, 30)]
    rows.insert(5, ",")  # the file's row 6 is blank; the rows after it keep their numbers
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(rows) + "\n")
    file_row = {f"item {n};": n + 1 if n < 5 else n + 2 for n in range(1, 30)}

    drafts = _chunks(load_document_isolated(path), size=20)  # 4 rows of 5 words a chunk

    assert len(drafts) == 8
    for draft in drafts:
        held = sorted(row for item, row in file_row.items() if f"{item} " in f"{draft.text} ")
        expected = f"rows {held[0]}–{held[-1]}" if len(held) > 1 else f"row {held[0]}"
        assert draft.location == expected, draft.text
    assert [d.location for d in drafts[:2]] == ["rows 2–5", "rows 7–10"]


def test_csv_single_row_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("name,limit\nhotel,150\n")
    [draft] = _chunks(load_document(path))
    assert draft.location == "row 2"


@needs_fixtures
def test_pdf_chunks_carry_their_page() -> None:
    document = load_document(FIXTURES / "pdf_multi-column.pdf")

    drafts = _chunks(document, size=120)

    assert {d.page for d in drafts} == set(range(1, 14))
    for draft in drafts:
        page = next(p for p in document.pages if p.number == draft.page)
        assert draft.text in page.text and draft.location is None
