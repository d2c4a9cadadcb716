"""Loaders against real documents from the shared fixtures and bad files generated per test."""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import time
import zipfile
from pathlib import Path

import docx
import pytest
from PIL import Image
from pptx import Presentation
from pptx.util import Inches
from pypdf import PdfReader, PdfWriter

from copilot.knowledge.loaders import (
    CorruptFile,
    DecompressionBomb,
    EmptyFile,
    EncryptedFile,
    LoadedDocument,
    NeedsOCR,
    Page,
    ParserCrashed,
    TooLarge,
    UnreadableFile,
    UnsupportedType,
    detect_kind,
    load_document,
    load_document_isolated,
    worker,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
SPANISH_SENTENCE = "dotados como están de razón y conciencia"


def fixture(name: str) -> Path:
    """Path of a shared fixture; skips the test when the fixtures are not checked out."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"fixture {name} not found in {FIXTURES} (shared fixtures not available)")
    return path


def page_numbers(document: LoadedDocument) -> list[int | None]:
    return [page.number for page in document.pages]


def page_text(document: LoadedDocument, number: int) -> str:
    return next(page.text for page in document.pages if page.number == number)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def pdf_bytes(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- PDF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "page_count", "phrase", "phrase_page"),
    [
        # `file` reports 6 pages for these two: it reads a sub-tree's /Count, not the root's.
        ("language-docs_fr_olap.pdf", 12, "8 Travaux existants et perspectives", 11),
        ("pdf_multi-column.pdf", 13, "5.3 Qualitative Analysis", 7),
        ("scotus_briefs_598us1r3_j4ek.pdf", 24, "Justice Sotomayor delivered the opinion", 5),
    ],
)
def test_pdf_phrase_lands_on_its_page(
    name: str, page_count: int, phrase: str, phrase_page: int
) -> None:
    document = load_document(fixture(name))

    assert document.kind == "pdf"
    assert document.mime_type == "application/pdf"
    assert document.page_count == page_count
    assert page_numbers(document) == list(range(1, page_count + 1))
    pages_with_phrase = [page.number for page in document.pages if phrase in page.text]
    assert pages_with_phrase == [phrase_page]


def test_french_pdf_keeps_accents() -> None:
    document = load_document(fixture("language-docs_fr_olap.pdf"))

    first_page = page_text(document, 1)
    assert "Résumés et interrogations de logs de requêtes OLAP" in first_page
    assert "Université François Rabelais Tours" in first_page


def test_korean_pdf_text_is_intact_and_tabs_become_spaces() -> None:
    document = load_document(fixture("pdf_korean-text-with-tables.pdf"))

    assert document.page_count == 1
    text = page_text(document, 1)
    assert "적립 제외 대상" in text
    assert "적립 혜택은 매출전표 접수 시점 기준으로 적용" in text
    assert "\t" not in text


def test_pdf_ligatures_become_plain_letters() -> None:
    document = load_document(fixture("pdf_layout-parser-paper-fast.pdf"))

    first_page = page_text(document, 1)
    assert "LayoutParser: A Unified Toolkit for Deep" in first_page
    assert "\ufb01" not in first_page  # the "fi" ligature glyph
    assert "\x00" not in first_page


@pytest.mark.parametrize(
    ("name", "stamp", "body_on_page_1", "printed_page_2"),
    [
        (
            "pdf_multi-column.pdf",
            "arXiv:2004.04906v3",
            "state-of-the-art results on multiple open-domain",
            None,  # this paper prints no page numbers
        ),
        (
            "pdf_layout-parser-paper-fast.pdf",
            "arXiv:2103.15348v2",
            "document image analysis (DIA) tasks including document image classification",
            "2 Z. Shen et al.",
        ),
    ],
)
def test_pdf_drops_the_sideways_arxiv_stamp_in_the_margin(
    name: str, stamp: str, body_on_page_1: str, printed_page_2: str | None
) -> None:
    path = fixture(name)
    # The stamp runs up the left edge of page 1; plain extraction puts it among the body.
    assert stamp in (PdfReader(path).pages[0].extract_text() or "")

    document = load_document(path)

    assert not [page.number for page in document.pages if stamp in page.text]
    assert "[cs." not in page_text(document, 1)
    assert body_on_page_1 in page_text(document, 1)
    assert page_numbers(document) == list(range(1, document.page_count + 1))
    if printed_page_2 is not None:
        assert page_text(document, 2).startswith(printed_page_2)


def test_pdf_drops_marks_printed_off_the_page_but_keeps_the_tables() -> None:
    path = fixture("pdf_korean-text-with-tables.pdf")
    # Sideways digits below the page's bottom edge: trim marks, not content.
    assert "0\t\n3\t\n9" in (PdfReader(path).pages[0].extract_text() or "")

    text = page_text(load_document(path), 1)

    assert not [line for line in text.splitlines() if line.strip().isdigit()]
    assert "적립 제외 대상" in text


def test_copy_protected_pdf_with_owner_password_only_loads() -> None:
    path = fixture("pdf_copy-protected.pdf")
    assert PdfReader(path).is_encrypted  # the point of this fixture

    document = load_document(path)

    assert document.page_count == 2
    assert "LayoutParser: A Unified Toolkit" in page_text(document, 1)


def test_password_protected_pdf_fixture_is_refused() -> None:
    with pytest.raises(EncryptedFile) as raised:
        load_document(fixture("pdf_password.pdf"))

    assert raised.value.reason == "encrypted"
    assert str(raised.value) == (
        '"pdf_password.pdf" is password-protected; remove the password and upload again.'
    )


def test_pdf_encrypted_with_user_password_is_refused(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=fixture("pdf_korean-text-with-tables.pdf"))
    writer.encrypt("secret")
    path = write(tmp_path, "upload-1234.bin", pdf_bytes(writer))

    with pytest.raises(EncryptedFile, match="password-protected") as raised:
        load_document(path, filename="Kontoauszug.pdf")

    assert "Kontoauszug.pdf" in str(raised.value)


def test_pdf_with_aes_owner_password_only_loads(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=fixture("pdf_korean-text-with-tables.pdf"))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    path = write(tmp_path, "protected.pdf", pdf_bytes(writer))

    document = load_document(path)

    assert "적립 제외 대상" in page_text(document, 1)


def test_scanned_pdf_with_ocr_text_layer_loads() -> None:
    # The fixture is a 1940s typewritten letter with a (noisy) OCR text layer: it has text.
    document = load_document(fixture("pdf_pdf-with-ocr-text.pdf"))

    assert document.page_count == 1
    assert "progress of the Foundation" in page_text(document, 1)


def test_pdf_without_text_needs_ocr(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_blank_page(width=595, height=842)
    path = write(tmp_path, "scan.pdf", pdf_bytes(writer))

    with pytest.raises(NeedsOCR) as raised:
        load_document(path)

    assert raised.value.reason == "needs_ocr"
    assert '"scan.pdf" has no extractable text; it needs OCR' in str(raised.value)


def test_pdf_without_pages_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "nothing.pdf", pdf_bytes(PdfWriter()))

    with pytest.raises(EmptyFile, match=r'"nothing\.pdf" has no pages'):
        load_document(path)


def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    original = fixture("pdf_multi-column.pdf").read_bytes()
    path = write(tmp_path, "half.pdf", original[: len(original) // 2])

    with pytest.raises(CorruptFile) as raised:
        load_document(path)

    assert raised.value.reason == "corrupt"
    assert '"half.pdf" is damaged or not a valid PDF' in str(raised.value)


def test_random_bytes_named_pdf_are_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path, "invoice.pdf", os.urandom(64 * 1024))

    with pytest.raises(CorruptFile, match=r'"invoice\.pdf" is not a valid PDF file'):
        load_document(path)


# --- DOCX ----------------------------------------------------------------------------------


def test_docx_tables_render_rows_in_document_order() -> None:
    document = load_document(fixture("docx-tables.docx"))

    assert document.kind == "docx"
    assert document.page_count is None
    assert page_numbers(document) == [None]
    text = document.pages[0].text
    assert "Header Col 1 | Header Col 2\nLorem ipsum | A link example" in text
    # The nested table's cells (e, f, g&t, h) are kept inside their parent cell.
    assert "d | e / f; g&t / h | i" in text
    # Merged cells are not repeated across the columns they span.
    assert "a | b\n" in text
    order = [text.index(marker) for marker in ("Simple uniform", "Header Col 1", "Nested Table")]
    assert order == sorted(order)


def test_docx_paragraphs_and_headings(tmp_path: Path) -> None:
    word = docx.Document()
    word.add_heading("Quarterly report", level=1)
    word.add_paragraph("Revenue grew in every region.")
    word.add_heading("Regional figures", level=2)
    table = word.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Revenue"
    table.cell(1, 0).text, table.cell(1, 1).text = "Nord", "12 Mio €"
    word.add_paragraph("Outlook: stable.")
    path = tmp_path / "report.docx"
    word.save(str(path))

    document = load_document(path)

    assert document.text == (
        "# Quarterly report\n\nRevenue grew in every region.\n\n## Regional figures\n\n"
        "Region | Revenue\nNord | 12 Mio €\n\nOutlook: stable."
    )
    # One page per section, located by its heading path.
    assert [(p.number, p.location) for p in document.pages] == [
        (None, "Quarterly report"),
        (None, "Quarterly report > Regional figures"),
    ]


def test_large_docx_loads_quickly_with_headings() -> None:
    path = fixture("handbook-872p.docx")

    started = time.perf_counter()
    document = load_document(path)
    elapsed = time.perf_counter() - started

    text = document.text
    assert elapsed < 10, f"872-page DOCX took {elapsed:.1f}s"
    assert len(text) > 800_000
    assert "\n# CHAPTER 1 – INTRODUCTION\n" in text
    assert "\n## A. PURPOSE\n" in text
    assert "\n### 10. LANGUAGE INTERPRETERS\n" in text


def test_docx_without_text_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))

    with pytest.raises(EmptyFile, match=r'"blank\.docx" contains no text'):
        load_document(path)


def test_truncated_docx_is_corrupt(tmp_path: Path) -> None:
    original = fixture("docx-tables.docx").read_bytes()
    path = write(tmp_path, "cut.docx", original[: len(original) // 2])

    with pytest.raises(CorruptFile) as raised:
        load_document(path)

    assert '"cut.docx" is damaged' in str(raised.value)
    assert "Word (.docx)" in str(raised.value)


def test_zip_without_word_parts_named_docx_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "notes.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")

    with pytest.raises(CorruptFile, match="none of the parts of a Word"):
        load_document(path)


def test_docx_decompression_bomb_by_total_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("word/document.xml", "w", force_zip64=True) as member,
    ):
        zeros = b"\0" * 2**20
        for _ in range(210):
            member.write(zeros)
    assert path.stat().st_size < 2 * 2**20  # small on disk, 210 MiB inflated

    with pytest.raises(DecompressionBomb) as raised:
        load_document(path)

    assert raised.value.reason == "decompression_bomb"
    assert '"bomb.docx" was not opened because it looks like a decompression bomb' in str(
        raised.value
    )


def test_docx_decompression_bomb_by_compression_ratio(tmp_path: Path) -> None:
    path = tmp_path / "ratio.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (20 * 2**20))

    with pytest.raises(DecompressionBomb, match="compressed .* to 1"):
        load_document(path)


# --- PPTX ----------------------------------------------------------------------------------


def build_presentation(path: Path) -> None:
    presentation = Presentation()
    title_slide = presentation.slides.add_slide(presentation.slide_layouts[0])
    title_slide.shapes.title.text = "Roadmap 2026"
    title_slide.placeholders[1].text = "Prioritäten für das nächste Jahr"

    presentation.slides.add_slide(presentation.slide_layouts[6])  # blank, no text at all

    table_slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    table_slide.shapes.title.text = "Sales by region"
    table = table_slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for row, (region, sales) in enumerate([("Region", "Sales"), ("EMEA", "120"), ("APAC", "95")]):
        table.cell(row, 0).text, table.cell(row, 1).text = region, sales
    table_slide.notes_slide.notes_text_frame.text = "Mention the APAC hiring freeze."
    presentation.save(str(path))


def test_pptx_one_page_per_slide_with_tables_and_notes(tmp_path: Path) -> None:
    path = tmp_path / "roadmap.pptx"
    build_presentation(path)

    document = load_document(path)

    assert document.kind == "pptx"
    assert document.page_count == 3
    assert page_numbers(document) == [1, 3]  # the blank slide 2 has no page
    assert page_text(document, 1) == "# Roadmap 2026\n\nPrioritäten für das nächste Jahr"
    third = page_text(document, 3)
    assert third.startswith("# Sales by region\n\n")
    assert "Region | Sales\nEMEA | 120\nAPAC | 95" in third
    assert third.endswith("Notes: Mention the APAC hiring freeze.")


def test_pptx_is_recognised_by_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "slides.docx"
    build_presentation(path)

    assert load_document(path).kind == "pptx"


def test_truncated_pptx_is_corrupt(tmp_path: Path) -> None:
    good = tmp_path / "good.pptx"
    build_presentation(good)
    path = write(tmp_path, "cut.pptx", good.read_bytes()[:5000])

    with pytest.raises(CorruptFile, match=r'"cut\.pptx" is damaged'):
        load_document(path)


# --- HTML ----------------------------------------------------------------------------------

PAGE_WITH_CHROME = """<!DOCTYPE html>
<html><head><title>Urlaubsantrag</title>
<style>body { color: red }</style>
<script>var trackingSecret = "do-not-index";</script></head>
<body>
<header><a href="/">Company Home</a></header>
<nav><ul><li>Navigation link</li></ul></nav>
<aside>Sidebar advert</aside>
<noscript>Enable JavaScript</noscript>
<div style="display: none">Hidden tracking text</div>
<h1>Urlaub beantragen</h1>
<p>Anträge   stellen Sie <b>spätestens</b> zwei Wochen vorher.</p>
<p>Fragen? Wenden Sie sich an die Personalabteilung.</p>
<h2>Fristen</h2>
<table><tr><th>Art</th><th>Frist</th></tr><tr><td>Urlaub</td><td><p>14 Tage</p></td></tr></table>
<ul><li>Erster Punkt</li><li>Zweiter Punkt</li></ul>
<form><label>Search</label><input name="q"></form>
<footer>Copyright footer</footer>
<script>document.write("late script")</script>
</body></html>"""


def test_html_keeps_main_text_and_drops_chrome(tmp_path: Path) -> None:
    path = write(tmp_path, "urlaub.html", PAGE_WITH_CHROME.encode("utf-8"))

    document = load_document(path)

    assert document.kind == "html"
    assert document.mime_type == "text/html"
    assert document.text == (
        "# Urlaubsantrag\n\n"
        "# Urlaub beantragen\n\n"
        "Anträge stellen Sie spätestens zwei Wochen vorher.\n\n"
        "Fragen? Wenden Sie sich an die Personalabteilung.\n\n"
        "## Fristen\n\n"
        "Art | Frist\nUrlaub | 14 Tage\n\n"
        "- Erster Punkt\n- Zweiter Punkt"
    )
    # The page title holds no text of its own: it goes with the first section.
    assert [p.location for p in document.pages] == [
        "Urlaub beantragen",
        "Urlaub beantragen > Fristen",
    ]


def test_html_prefers_main_keeps_article_header_and_code_lines(tmp_path: Path) -> None:
    html = (
        "<body><div>Site banner</div><main><article><header><h1>Release notes</h1></header>"
        "<p>Install with:</p><pre>pip install copilot\ncopilot --help</pre>"
        "<ul><li><p>Faster loaders</p></li><li>Fewer bugs</li></ul></article></main>"
        "<div>Unrelated text outside main</div></body>"
    )
    path = write(tmp_path, "notes.html", html.encode("utf-8"))

    assert load_document(path).pages[0].text == (
        "# Release notes\n\nInstall with:\n\npip install copilot\ncopilot --help\n\n"
        "- Faster loaders\n- Fewer bugs"
    )


def test_html_in_cp1252_declared_by_meta_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="windows-1252"></head><body><p>Café – 5 €</p></body></html>'
    path = write(tmp_path, "cafe.html", html.encode("cp1252"))

    assert load_document(path).pages[0].text == "Café – 5 €"


def test_german_html_fragment() -> None:
    document = load_document(fixture("fake-html-lang-de.html"))

    assert document.pages[0].text == (
        "### Jahresabschluss zum Geschäftsjahr vom 01.01.2020 bis zum 31.12.2020"
    )


def test_inline_xbrl_filing_with_xml_declaration_is_html() -> None:
    path = fixture("example-10k-1p.html")
    assert path.read_bytes().startswith(b"<?xml")

    text = load_document(path).pages[0].text

    assert "Galaxy Gaming, Inc." in text
    assert "Title of each class | Trading symbol | Name of exchange on which registered" in text
    assert "Common stock | GLXZ | OTCQB marketplace" in text
    assert "contextRef" not in text
    assert "<" not in text


def test_html_with_only_scripts_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "app.html", b"<html><body><script>main()</script></body></html>")

    with pytest.raises(EmptyFile, match=r'"app\.html" contains no readable text'):
        load_document(path)


# --- Spanish in every format -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("language-docs_eng_spa_mult.docx", "docx"),
        ("language-docs_eng_spa_mult.html", "html"),
        ("language-docs_eng_spa_mult.md", "markdown"),
    ],
)
def test_spanish_text_survives_each_format(name: str, kind: str) -> None:
    document = load_document(fixture(name))

    assert document.kind == kind
    assert SPANISH_SENTENCE in document.pages[0].text
    assert "All human beings are born free and equal in dignity and rights." in (
        document.pages[0].text
    )


# --- Markdown, text, CSV -------------------------------------------------------------------


def test_markdown_with_umlauts_is_kept_verbatim() -> None:
    path = fixture("umlauts-utf8.md")

    document = load_document(path)

    assert document.kind == "markdown"
    assert document.mime_type == "text/markdown"
    assert document.pages == [
        Page(number=None, text="## können\n\nkönnen\n\näöüß", location="können")
    ]


def test_markdown_table_is_not_rendered() -> None:
    path = fixture("simple-table.md")

    document = load_document(path)

    assert document.pages[0].text == path.read_text(encoding="utf-8").strip()


GERMAN_TEXT = "Grüße aus München: Die Straße ist schön, das Büro öffnet früh – Kosten 5 €.\n"
FRENCH_TEXT = "Le café était fermé à cause de la grève ; Noël approche, crème brûlée.\n"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (GERMAN_TEXT, "cp1252"),
        (FRENCH_TEXT, "cp1252"),
        (FRENCH_TEXT, "latin-1"),
        (GERMAN_TEXT, "utf-16"),  # with BOM
        (GERMAN_TEXT, "utf-16-le"),  # without BOM
        (GERMAN_TEXT, "utf-8-sig"),
    ],
)
def test_plain_text_encodings_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    path = write(tmp_path, "notes.txt", text.replace("\n", "\r\n").encode(encoding))

    document = load_document(path)

    assert document.kind == "text"
    assert document.mime_type == "text/plain"
    assert document.pages == [Page(number=None, text=text.strip())]


def test_csv_with_semicolons_in_cp1252(tmp_path: Path) -> None:
    content = "Name;Stadt;Betrag\r\nMüller;Köln;12,50\r\nSchäfer;Düsseldorf;7,00\r\n"
    path = write(tmp_path, "umsatz.csv", content.encode("cp1252"))

    document = load_document(path)

    assert document.kind == "csv"
    assert document.pages[0].text == (
        "Name: Müller; Stadt: Köln; Betrag: 12,50\nName: Schäfer; Stadt: Düsseldorf; Betrag: 7,00"
    )


def test_csv_with_quoted_commas_and_blank_cells(tmp_path: Path) -> None:
    content = 'id,title,notes\n1,"Smith, John","line one\nline two"\n2,Doe,\n'
    path = write(tmp_path, "people.csv", content.encode("utf-8"))

    document = load_document(path)

    assert document.pages[0].text == (
        "id: 1; title: Smith, John; notes: line one line two\nid: 2; title: Doe"
    )


def test_csv_with_only_a_header_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "header.csv", b"a,b,c\n")

    with pytest.raises(EmptyFile, match="no data rows"):
        load_document(path)


# --- Generic problems ----------------------------------------------------------------------


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "nothing.pdf", b"")

    with pytest.raises(EmptyFile) as raised:
        load_document(path)

    assert raised.value.reason == "empty"
    assert str(raised.value) == '"nothing.pdf" is empty (0 bytes); there is no text to add.'


def test_whitespace_only_text_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "blank.txt", " \r\n\t\n   ".encode("utf-16"))

    with pytest.raises(EmptyFile, match=r'"blank\.txt" contains only whitespace'):
        load_document(path)


def test_image_is_unsupported(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buffer, format="PNG")
    path = write(tmp_path, "scan.png", buffer.getvalue())

    with pytest.raises(UnsupportedType) as raised:
        load_document(path)

    assert raised.value.reason == "unsupported"
    assert '"scan.png" is a PNG image; supported types are PDF' in str(raised.value)


def test_image_renamed_to_pdf_is_still_an_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buffer, format="JPEG")
    path = write(tmp_path, "contract.pdf", buffer.getvalue())

    with pytest.raises(UnsupportedType, match="is a JPG image"):
        load_document(path)


def test_plain_zip_archive_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "hello")

    with pytest.raises(UnsupportedType, match="is a ZIP archive; unpack it"):
        load_document(path)


def test_too_large_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "big.txt", b"x" * 4096)

    def refuse_to_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened although its size is over the limit")

    monkeypatch.setattr(Path, "open", refuse_to_open)
    with pytest.raises(TooLarge) as raised:
        load_document(path, max_bytes=1024)

    assert raised.value.reason == "too_large"
    assert str(raised.value).startswith('"big.txt" is too large (4.0 KiB); the limit is 1.0 KiB.')


def test_stored_upload_reports_the_users_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "3f2a9c.bin", b"")

    with pytest.raises(EmptyFile, match=r'^"Quartalsbericht Q3\.pdf" is empty'):
        load_document(path, filename="Quartalsbericht Q3.pdf")


@pytest.mark.parametrize(
    "error_type",
    [EmptyFile, UnsupportedType, EncryptedFile, CorruptFile, NeedsOCR, TooLarge, DecompressionBomb],
)
def test_errors_are_value_errors_that_survive_pickling(error_type: type[UnreadableFile]) -> None:
    error = error_type("a.pdf", "has a problem.")

    restored = pickle.loads(pickle.dumps(error))

    assert isinstance(restored, UnreadableFile)
    assert isinstance(restored, ValueError)
    assert type(restored) is error_type
    assert str(restored) == '"a.pdf" has a problem.'
    assert restored.reason == error_type.reason != UnreadableFile.reason


# --- detect_kind ---------------------------------------------------------------------------


def test_detect_kind_trusts_content_over_extension() -> None:
    pdf_head = fixture("pdf_korean-text-with-tables.pdf").read_bytes()[:4096]
    docx_head = fixture("docx-tables.docx").read_bytes()[:4096]

    assert detect_kind(pdf_head, "report.txt") == "pdf"
    assert detect_kind(docx_head, "report.bin") == "docx"
    assert detect_kind(b"<!DOCTYPE html><html><body>Hi</body></html>", "page.txt") == "html"
    assert detect_kind(b'<?xml version="1.0"?>\n<!-- c -->\n<html><body/></html>', "x") == "html"


@pytest.mark.parametrize(
    ("head", "filename", "kind"),
    [
        (b"<h3>Titel</h3>", "fragment.html", "html"),
        (b"<h3>Titel</h3>", "fragment", "html"),
        (b"<div align=center>Logo</div>\n# Readme", "README.md", "markdown"),
        (b"# Title\n\nBody", "notes.md", "markdown"),
        (b"# Title\n\nBody", "notes", "text"),
        (b"a;b\n1;2\n", "data.csv", "csv"),
        (b"a\tb\n1\t2\n", "data.tsv", "csv"),
        (b"Just some text.", "notes.txt", "text"),
        ("Grüße".encode("cp1252"), "notes.txt", "text"),
    ],
)
def test_detect_kind_uses_extension_as_tie_break_for_text(
    head: bytes, filename: str, kind: str
) -> None:
    assert detect_kind(head, filename) == kind


@pytest.mark.parametrize(
    ("head", "filename", "error_type", "message"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(64), "setup.exe",
         UnsupportedType, "is an EXE file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "old.doc",
         UnsupportedType, "legacy Office 97-2003"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "locked.docx",
         EncryptedFile, "is password-protected"),
        (b"{\\rtf1\\ansi Hello}", "letter.rtf", UnsupportedType, "Rich Text"),
        (b"", "empty.txt", EmptyFile, "is empty"),
    ],
)  # fmt: skip
def test_detect_kind_refuses_what_it_cannot_read(
    head: bytes, filename: str, error_type: type[UnreadableFile], message: str
) -> None:
    with pytest.raises(error_type, match=message) as raised:
        detect_kind(head, filename)

    assert filename in str(raised.value)


# --- The isolated worker -------------------------------------------------------------------


def test_the_worker_reads_what_load_document_reads(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=fixture("pdf_korean-text-with-tables.pdf"))
    paths = [
        write(tmp_path, "umsatz.csv", "Name;Stadt\r\nMüller;Köln\r\n".encode("cp1252")),
        write(tmp_path, "notes.md", "# Notes\n\nGrüße, 5 € \U0001f600\n".encode()),
        write(tmp_path, "korean.pdf", pdf_bytes(writer)),
    ]
    for path in paths:
        assert load_document_isolated(path) == load_document(path)


@pytest.mark.parametrize(
    ("name", "content", "error_type"),
    [
        ("blank.txt", b" \n\t\n", EmptyFile),
        ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, UnsupportedType),
        ("invoice.pdf", b"%PDF-1.4\n" + b"\x00" * 64, CorruptFile),
    ],
)
def test_the_workers_errors_keep_their_class_and_message(
    tmp_path: Path, name: str, content: bytes, error_type: type[UnreadableFile]
) -> None:
    path = write(tmp_path, "upload.bin", content)
    with pytest.raises(UnreadableFile) as in_process:
        load_document(path, filename=name)
    with pytest.raises(UnreadableFile) as isolated:
        load_document_isolated(path, filename=name)
    assert type(isolated.value) is type(in_process.value) is error_type
    assert str(isolated.value) == str(in_process.value)


def test_a_worker_failure_no_loader_foresaw_is_a_crash_with_the_detail(tmp_path: Path) -> None:
    with pytest.raises(ParserCrashed, match="FileNotFoundError"):
        load_document_isolated(tmp_path / "gone.txt")


def test_a_cp1252_csv_is_not_read_as_another_code_page(tmp_path: Path) -> None:
    content = "Name;Stadt;Betrag\r\nJosé;Köln;12 €\r\nMüller;München;7 €\r\n"
    path = write(tmp_path, "kunden.csv", content.encode("cp1252"))

    document = load_document(path)

    assert document.pages[0].text == (
        "Name: José; Stadt: Köln; Betrag: 12 €\nName: Müller; Stadt: München; Betrag: 7 €"
    )


def test_a_worker_that_warns_endlessly_keeps_its_log_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A crafted file can make a library warn per object; the app holds the worker's stderr.
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    handler = worker._BoundedStderr(worker.MAX_LOG_RECORDS)
    noisy = logging.getLogger("test.noisy.parser")
    noisy.addHandler(handler)
    try:
        for number in range(5 * worker.MAX_LOG_RECORDS):
            noisy.warning("broken object %d", number)
    finally:
        noisy.removeHandler(handler)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == worker.MAX_LOG_RECORDS + 1
    assert lines[-1] == f"(further log records dropped after {worker.MAX_LOG_RECORDS})"
