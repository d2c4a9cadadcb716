"""DOCX -> text with python-docx.

python-docx is the long-standing, maintained reader/writer for OOXML Word files, pure Python on
top of lxml (which it configures without entity resolution, so XML entity bombs are inert). Its
``iter_inner_content`` yields paragraphs and tables in document order, which is what keeps a
table next to the paragraph that introduces it. Headings become ``#`` lines so the chunker and
the model still see the document's structure.

A .docx has no stored page breaks (Word lays pages out at render time), so pages have
``number=None``: one per section, located by its heading path (see `sections`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

import docx
from docx.document import Document as WordDocument
from docx.oxml.ns import qn
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from copilot.knowledge.loaders.document import LoadedDocument, document_of
from copilot.knowledge.loaders.encoding import tidy_extracted_text
from copilot.knowledge.loaders.errors import CorruptFile, EmptyFile
from copilot.knowledge.loaders.sections import pages_by_heading, rendered_headings

_HEADING_STYLE = re.compile(r"^heading\s+([1-9])$", re.IGNORECASE)
_CELL_SEPARATOR = " | "
_NESTED_ROW_SEPARATOR = "; "


def load_word(stream: IO[bytes], filename: str) -> LoadedDocument:
    """Paragraphs and tables in order; call only after the ZIP passed the bomb check."""
    try:
        document = docx.Document(stream)
    except Exception as error:  # PackageNotFoundError, KeyError, lxml errors, ValueError ...
        raise CorruptFile(
            filename,
            "is damaged or not a valid Word document; open it in Word, save it again and "
            "upload the new copy.",
        ) from error
    try:
        text = tidy_extracted_text(render_word_document(document))
    except Exception as error:  # malformed parts only show up while walking the body
        raise CorruptFile(
            filename,
            "is damaged: part of its content could not be read; save it again and "
            "upload the new copy.",
        ) from error
    if not text:
        raise EmptyFile(filename, "contains no text.")
    return document_of("docx", pages_by_heading(text, rendered_headings(text)))


def render_word_document(document: WordDocument) -> str:
    """The body as Markdown-ish text: ``#`` headings, one table row per line."""
    blocks: list[str] = []
    heading_levels: dict[str | None, int | None] = {}
    numbered = NumberedHeadings()
    for block in _body_blocks(document):
        if isinstance(block, Paragraph):
            rendered = _render_paragraph(block, heading_levels, numbered)
        else:
            rendered = _render_table(block)
        if rendered:
            blocks.append(rendered)
    return "\n\n".join(blocks)


def _body_blocks(document: WordDocument) -> Iterator[Paragraph | Table]:
    """Same as ``document.iter_inner_content()``, minus its cost on long documents.

    That method selects children with the XPath union ``./w:p | ./w:tbl``, which lxml sorts
    back into document order in quadratic time: 1 s of the handbook fixture's 1.8 s.
    ``iterchildren`` with two tags yields the same elements, in order, in under a millisecond.
    """
    paragraph_tag, table_tag = qn("w:p"), qn("w:tbl")
    for element in document.element.body.iterchildren(paragraph_tag, table_tag):
        if element.tag == paragraph_tag:
            yield Paragraph(element, document)
        else:
            yield Table(element, document)


class NumberedHeadings:
    """Headings without a heading style, recognised by the document's own numbering.

    Documents pasted together from copies often keep heading styles in one copy only: the
    handbook fixture's later copies have "CHAPTER 6 – BUDGETS", "A. ANNUAL AND AMENDED
    BUDGETS", "3. OPERATING EXPENSE LINE ITEMS" as plain paragraphs, so their text was cited
    under the last styled heading (chapter 7). Each styled heading teaches the level of its
    numbering ("CHAPTER n", "A.", "1."); a later unstyled paragraph numbered the same way
    and written in capitals, short and without a closing period, is a heading of that
    level. Nothing is inferred before the first styled heading (a contents page) or in a
    document without heading styles.
    """

    def __init__(self) -> None:
        self.levels: dict[str, int] = {}

    def learn(self, text: str, level: int) -> None:
        kind = _numbering_kind(text)
        if kind is not None:
            self.levels.setdefault(kind, level)

    def level_of(self, text: str) -> int | None:
        kind = _numbering_kind(text)
        if kind is None or kind not in self.levels or not _looks_like_heading(text):
            return None
        return self.levels[kind]


_NUMBERING = re.compile(
    r"^(?:(?P<word>[A-Z]{3,})\s+\d{1,3}\b|(?P<letter>[A-Z])\.|(?P<digit>\d{1,2})\.)"
)
_MAX_HEADING_WORDS = 15


def _numbering_kind(text: str) -> str | None:
    match = _NUMBERING.match(text)
    if match is None:
        return None
    if match.group("word"):
        return f"word {match.group('word')}"
    return "letter" if match.group("letter") else "digit"


def _looks_like_heading(text: str) -> bool:
    words = text.split()
    letters = [character for character in text if character.isalpha()]
    return (
        len(words) <= _MAX_HEADING_WORDS
        and len(letters) >= 2
        and all(character.isupper() for character in letters)
        and not text.endswith(".")
        and not text[-1].isdigit()  # a contents line ends with its page ("PURPOSE1-1")
    )


def _render_paragraph(
    paragraph: Paragraph,
    heading_levels: dict[str | None, int | None],
    numbered: NumberedHeadings,
) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    level = _heading_level(paragraph, heading_levels)
    if level is not None:
        numbered.learn(text, level)
    else:
        level = numbered.level_of(text)
    if level is None:
        return text
    return f"{'#' * level} {' '.join(text.split())}"


def _heading_level(
    paragraph: Paragraph, heading_levels: dict[str | None, int | None]
) -> int | None:
    """Level of a Heading/Title style (None for body text), resolved once per style.

    ``paragraph.style`` costs a scan of styles.xml on every call (the handbook fixture spent
    4 of its 5 seconds there), so styles are cached by the raw style id from the XML.
    """
    # The raw id is only reachable through the private CT_P; python-docx has no public one.
    style_id: str | None = paragraph._p.style
    if style_id not in heading_levels:
        style = paragraph.style
        style_name = style.name if style is not None and style.name else ""
        match = _HEADING_STYLE.match(style_name)
        if match:
            heading_levels[style_id] = int(match.group(1))
        else:
            heading_levels[style_id] = 1 if style_name.lower() == "title" else None
    return heading_levels[style_id]


def _render_table(table: Table) -> str:
    return "\n".join(_render_rows(table, _CELL_SEPARATOR))


def _render_rows(table: Table, cell_separator: str) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cell_texts: list[str] = []
        previous_cell: _Cell | None = None
        for cell in row.cells:
            # A horizontally merged cell is yielded once per grid column it spans.
            if cell is previous_cell:
                continue
            previous_cell = cell
            cell_texts.append(_cell_text(cell))
        if any(cell_texts):
            rows.append(cell_separator.join(cell_texts))
    return rows


def _cell_text(cell: _Cell) -> str:
    """Cell content on one line; nested tables are kept instead of silently dropped."""
    parts: list[str] = []
    for block in cell.iter_inner_content():
        if isinstance(block, Paragraph):
            text = " ".join(block.text.split())
            if text:
                parts.append(text)
        else:
            nested_rows = _render_rows(block, " / ")
            if nested_rows:
                parts.append(_NESTED_ROW_SEPARATOR.join(nested_rows))
    return " ".join(parts)
