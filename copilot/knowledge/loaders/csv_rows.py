"""CSV -> one line per row that repeats the header: ``col: value; col: value``.

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
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise EmptyFile(filename, "has a header but no data rows.")
    header, *records = rows
    column_names = _column_names(header)
    lines = [line for line in (_render_row(record, column_names) for record in records) if line]
    return document_of("csv", [Page(number=None, text="\n".join(lines))])


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
