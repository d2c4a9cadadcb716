"""CSV -> one line per row that repeats the header: ``col: value; col: value``.

The Page keeps each line's row number in the file (the header is row 1, as a spreadsheet
shows it), so a chunk is cited by the rows it holds.

A bare row like ``4711,2.5,EUR`` means nothing once it is cut into a chunk away from its
header, so each row carries its column names. The standard library's :mod:`csv` is enough to
parse and to sniff the delimiter (``,`` ``;`` tab ``|``); Excel in many European locales writes
semicolons. The bytes are decoded with the same encoding detection as plain text, because
spreadsheet exports are often cp1252 or UTF-16.
"""

from __future__ import annotations

import csv
import io

from copilot.knowledge.loaders.document import LoadedDocument, Page, document_of
from copilot.knowledge.loaders.encoding import decode_text
from copilot.knowledge.loaders.errors import CorruptFile, EmptyFile

SNIFFED_DELIMITERS = ",;\t|"
_SNIFF_CHARACTERS = 64 * 1024


def load_csv(data: bytes, filename: str) -> LoadedDocument:
    """Rows rendered with their header, as one Page without a number."""
    text = decode_text(data, filename)
    if not text.strip():
        raise EmptyFile(filename, "contains only whitespace; there is no text to add.")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), _sniff_dialect(text)))
    except csv.Error as error:
        raise CorruptFile(
            filename, f"could not be read as CSV ({error}); check the file and upload again."
        ) from error
    numbered = [(number, row) for number, row in enumerate(rows, 1) if any(c.strip() for c in row)]
    if len(numbered) < 2:
        raise EmptyFile(filename, "has a header but no data rows.")
    (_, header), *records = numbered
    column_names = _column_names(header)
    rendered = [(number, _render_row(record, column_names)) for number, record in records]
    lines = [(number, line) for number, line in rendered if line]
    text = "\n".join(line for _, line in lines)
    row_numbers = tuple(number for number, _ in lines)
    location = row_range(row_numbers[0], row_numbers[-1])
    return document_of("csv", [Page(None, text, location=location, line_rows=row_numbers)])


def row_range(first: int, last: int) -> str:
    """How a citation names rows of a table: "row 7", "rows 2–51"."""
    return f"row {first}" if first == last else f"rows {first}–{last}"


def _sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SNIFF_CHARACTERS]
    if len(text) > _SNIFF_CHARACTERS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut row would confuse the sniffer
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFFED_DELIMITERS)
    except csv.Error:
        return csv.excel  # one column, or too little text to tell: plain commas


def _column_names(header: list[str]) -> list[str]:
    return [name.strip() or f"column {index}" for index, name in enumerate(header, start=1)]


def _render_row(record: list[str], column_names: list[str]) -> str:
    pairs: list[str] = []
    for index, value in enumerate(record):
        cleaned = " ".join(value.split())
        if not cleaned:
            continue
        name = column_names[index] if index < len(column_names) else f"column {index + 1}"
        pairs.append(f"{name}: {cleaned}")
    return "; ".join(pairs)
