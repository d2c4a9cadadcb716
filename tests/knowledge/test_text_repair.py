"""Text repair at ingestion, proved on the shared PDF fixtures (see loaders/text_repair.py)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from pypdf import PdfReader

from copilot.knowledge.chunking import Chunker
from copilot.knowledge.loaders import LoadedDocument, load_document
from copilot.knowledge.loaders.pdf_ligatures import mend_ligature_maps
from copilot.knowledge.loaders.text_repair import DocumentProfile, repair_page_text

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
PDF_FIXTURES = [
    "pdf_multi-column.pdf",
    "pdf_layout-parser-paper-fast.pdf",
    "scotus_briefs_598us1r3_j4ek.pdf",
    "language-docs_fr_olap.pdf",
    "pdf_korean-text-with-tables.pdf",
]


def fixture(name: str) -> Path:
    """A shared fixture's path; the test skips when ../shared is not beside the repo."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"fixture {name} not found in {FIXTURES} (shared fixtures not available)")
    return path


@cache
def loaded(name: str) -> LoadedDocument:
    return load_document(fixture(name))


def page(name: str, number: int) -> str:
    return next(p.text for p in loaded(name).pages if p.number == number)


def lines(name: str, number: int) -> list[str]:
    return page(name, number).splitlines()


def raw_page(name: str, number: int) -> str:
    return PdfReader(fixture(name)).pages[number - 1].extract_text()


def test_a_one_letter_prefix_keeps_its_hyphen_across_the_line_break() -> None:
    # "a d-\ndimensional real-valued vectors": the answerer used to quote "a ddimensional".
    assert "a d-\ndimensional" in raw_page("pdf_multi-column.pdf", 2)

    assert "maps any text passage to a d-dimensional real-valued vectors" in page(
        "pdf_multi-column.pdf", 2
    )
    assert not [p.number for p in loaded("pdf_multi-column.pdf").pages if "ddimens" in p.text]


def test_a_typesetters_hyphen_is_removed_and_the_authors_hyphen_kept() -> None:
    assert "reuse of im-\nportant" in raw_page("pdf_layout-parser-paper-fast.pdf", 1)
    assert "reuse of important innovations" in page("pdf_layout-parser-paper-fast.pdf", 1)
    # "open-\ndomain" on page 1: the paper writes "open-domain" in mid-line elsewhere.
    assert "open-\ndomain" in raw_page("pdf_multi-column.pdf", 1)
    text = page("pdf_multi-column.pdf", 1)
    assert "opendomain" not in text
    # "state-\nof-the-art": the line starts with a hyphenated word, so the compound goes on.
    assert "stateof" not in " ".join(p.text for p in loaded("pdf_multi-column.pdf").pages)
    # French: "l’ex-\nploitation" is one word again.
    assert "l’ex-\nploitation" in raw_page("language-docs_fr_olap.pdf", 1)
    assert "repose sur l’exploitation et la fouille" in page("language-docs_fr_olap.pdf", 1)


def test_a_footnote_is_never_glued_to_the_sentence_above_it() -> None:
    # Page 4 ends "... how its output differs from" and then prints footnote 6.
    assert "differs from\n6We use the un" in raw_page("pdf_multi-column.pdf", 4)

    page_lines = lines("pdf_multi-column.pdf", 4)

    assert page_lines[-2] == (
        "We use the unfiltered TriviaQA version and discard the noisy evidence documents "
        "mined from Bing."
    )
    assert page_lines[-3].endswith("along with analysis on how its output differs from")
    glued = re.compile(r"\b\d{1,2}[A-Z][a-z]+ ")
    for document_page in loaded("pdf_multi-column.pdf").pages:
        starts = [line for line in document_page.text.splitlines() if glued.match(line)]
        assert starts == [], f"page {document_page.number}"


def test_the_column_after_a_footnote_starts_its_own_paragraph() -> None:
    # Footnote 2 closes the left column of page 1; the right column must not run into it.
    page_lines = lines("pdf_multi-column.pdf", 1)

    footnote = next(line for line in page_lines if line.startswith("For instance, the exact"))
    assert footnote.endswith("(Yang et al., 2019a).")


def test_wrapped_lines_become_one_paragraph_and_headings_stay_on_their_own_line() -> None:
    page_lines = lines("pdf_layout-parser-paper-fast.pdf", 1)

    abstract = next(line for line in page_lines if line.startswith("Abstract."))
    assert "have been primarily driven by the application of neural networks. Ideally" in abstract
    assert abstract.endswith(
        "The library is publicly available at https://layout-parser.github.io."
    )
    assert page_lines[page_lines.index(abstract) + 1].startswith("Keywords: Document Image")
    assert "1 Introduction" in page_lines
    headings = ["3.2 Training", "4 Experimental Setup", "4.1 Wikipedia Data Pre-processing"]
    document_lines = {
        line for p in loaded("pdf_multi-column.pdf").pages for line in p.text.splitlines()
    }
    assert set(headings) <= document_lines
    # Table rows stay rows.
    assert "Natural Questions 79,168 58,880 8,757 3,610" in lines("pdf_multi-column.pdf", 4)


def test_a_sentence_is_never_joined_across_pages() -> None:
    # "Arizona Rule of Crimi-" ends page 2 and "nal Procedure" goes on under page 3's heads.
    assert lines("scotus_briefs_598us1r3_j4ek.pdf", 2)[-1].endswith("Arizona Rule of Crimi-")
    assert lines("scotus_briefs_598us1r3_j4ek.pdf", 3)[:2] == ["18 CRUZ v. ARIZONA", "Syllabus"]
    assert lines("scotus_briefs_598us1r3_j4ek.pdf", 3)[2].startswith("nal Procedure 32.1(g)")


def test_a_watermark_on_every_page_stays_its_own_line() -> None:
    document = loaded("scotus_briefs_598us1r3_j4ek.pdf")

    for document_page in document.pages:
        marks = [line for line in document_page.text.splitlines() if "Page Proof" in line]
        assert marks == ["Page Proof Pending Publication"], f"page {document_page.number}"
    # The page that ends "... in Sim-" before the mark keeps the cut word apart from it.
    assert "Sim-Page" not in " ".join(p.text for p in document.pages)


def test_ligatures_the_font_maps_to_one_letter_are_mended() -> None:
    # The court's fonts map the /fi glyph to "f" alone: every reader extracts "signifcant".
    assert "signifcant change" in raw_page("scotus_briefs_598us1r3_j4ek.pdf", 2)

    text = page("scotus_briefs_598us1r3_j4ek.pdf", 2)

    assert "After Cruz's conviction became final, this Court held" in text
    assert "“there has been a significant change in the law" in text
    assert "“ `firmly established" in text
    for damaged in ("signifcant", "fnal", "frmly", "confict"):
        assert not [
            p.number for p in loaded("scotus_briefs_598us1r3_j4ek.pdf").pages if damaged in p.text
        ], damaged


def test_mending_ligature_maps_counts_what_it_rewrote() -> None:
    reader = PdfReader(fixture("scotus_briefs_598us1r3_j4ek.pdf"))
    assert mend_ligature_maps(reader) > 0
    assert mend_ligature_maps(reader) == 0  # already mended: nothing left to rewrite
    # A PDF whose fonts map ligatures correctly is left alone.
    assert mend_ligature_maps(PdfReader(fixture("pdf_multi-column.pdf"))) == 0


def test_presentation_form_ligatures_become_letters() -> None:
    assert "ﬁ" in raw_page("pdf_layout-parser-paper-fast.pdf", 1)
    assert "document image classification" in page("pdf_layout-parser-paper-fast.pdf", 1)
    assert not re.search("[\ufb00-\ufb06]", page("pdf_layout-parser-paper-fast.pdf", 1))


def test_a_drop_capital_is_rejoined_only_when_its_rest_is_no_word() -> None:
    # No fixture sets a drop capital; "M de la dimension" (a variable, then French "de")
    # in the French paper must stay as it is.
    assert "M de la dimension Di, leur ancêtre commun" in page("language-docs_fr_olap.pdf", 4)

    damaged = "D espite the rain, we went out."
    assert repair_page_text(damaged, DocumentProfile.of([damaged])).startswith("Despite the")


@pytest.mark.parametrize("name", PDF_FIXTURES)
def test_chunk_offsets_point_into_the_repaired_page_text(name: str) -> None:
    document = loaded(name)
    chunker = Chunker(lambda text: len(text.split()), size=60, overlap=8)

    drafts = chunker.split(document.pages)

    texts = {p.number: p.text for p in document.pages}
    assert drafts
    for draft in drafts:
        assert texts[draft.page][draft.start : draft.start + len(draft.text)] == draft.text


@pytest.mark.parametrize("name", PDF_FIXTURES)
def test_repair_keeps_every_page_and_loses_no_letters(name: str) -> None:
    """Repair only moves line breaks, hyphens and footnote numbers: the letters all stay."""
    document = loaded(name)
    assert [p.number for p in document.pages] == sorted(p.number for p in document.pages)
    assert document.page_count == len(PdfReader(fixture(name)).pages)
    for document_page in document.pages:
        letters = re.sub(r"[^\w]|\d", "", document_page.text)
        assert len(letters) > 0.97 * len(
            re.sub(r"[^\w]|\d", "", raw_page(name, document_page.number))
        )


def test_lines_in_a_script_without_capitals_are_kept() -> None:
    # Korean table cells: without capitals or full stops a cell cannot be told from a wrap.
    page_lines = lines("pdf_korean-text-with-tables.pdf", 1)

    assert "* 주유는 LPG충전소 포함" in page_lines
    assert "업종 적립 대상" in page_lines


def test_plain_text_is_kept_as_written(tmp_path: Path) -> None:
    # Text files are not PDF output; the bench finds chunks by their offsets in the file.
    path = tmp_path / "notes.txt"
    path.write_text("A line that wraps\nhere, and an im-\nportant word.\n", encoding="utf-8")

    assert load_document(path).pages[0].text == "A line that wraps\nhere, and an im-\nportant word."
