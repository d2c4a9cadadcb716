"""Table rows as the loaders render them, read back with their header.

Markdown pipe tables and DOCX tables arrive as one row per line with cells between ``|``
(a Markdown table's second line is its ``---|---`` rule); the chunker repeats a table's
header at the top of each chunk of it, so the first row of a table in a chunk is its header.
CSV rows arrive as ``column: value; column: value`` lines, header included. Either way a row
is scored as ``column: value; ...`` text and answered as a small Markdown table, header first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CSV_FIELD = re.compile(r"^([^:;]{1,80}): (.*)$")


@dataclass(frozen=True)
class TableRow:
    """One data row and the header of its table (None when the table has none)."""

    cells: tuple[str, ...]
    header: tuple[str, ...] | None

    @property
    def text(self) -> str:
        """The row as ``column: value; ...``, so a question naming a column matches it."""
        if not self.header:
            return "; ".join(self.cells)
        pairs = []
        for index, cell in enumerate(self.cells):
            name = self.header[index] if index < len(self.header) else ""
            pairs.append(f"{name}: {cell}" if name else cell)
        return "; ".join(pairs)


def is_table_line(line: str) -> bool:
    return line.count("|") >= 2 or " | " in line or bool(_RULE.match(line))


def header_above(text: str, start: int) -> str | None:
    """The header of the pipe table that a piece of `text` starting at `start` begins inside
    (its first row, with the Markdown rule under it): None when the piece starts at the
    table's top, outside a table, or mid-line."""
    if start <= 0 or text[start - 1] != "\n":
        return None
    first_line = text[start:].split("\n", 1)[0]
    if not first_line.strip() or not is_table_line(first_line):
        return None
    table: list[str] = []
    for line in reversed(text[:start].splitlines()):
        if not line.strip() or not is_table_line(line):
            break
        table.insert(0, line)
    if not table:
        return None
    # A table's rows have its header's cells; prose or formulas with bars ("|cover(D)| = 5")
    # do not line up like that.
    widths = {len(cells_of(line)) for line in [*table, first_line] if not _RULE.match(line)}
    if len(widths) != 1 or widths.pop() < 2:
        return None
    has_rule = len(table) > 1 and bool(_RULE.match(table[1]))
    return "\n".join(table[:2] if has_rule else table[:1])


def cells_of(line: str) -> tuple[str, ...]:
    stripped = line.strip()
    if stripped.startswith("|"):
        stripped = stripped[1:]
    if stripped.endswith("|"):
        stripped = stripped[:-1]
    return tuple(" ".join(cell.split()) for cell in stripped.split("|"))


def pipe_table_rows(text: str) -> Iterator[TableRow]:
    """The data rows of every pipe table in a text, each with its table's first row as
    header (a table of one row is a row without header)."""
    table: list[tuple[str, ...]] = []
    for line in [*text.splitlines(), ""]:
        if line.strip() and is_table_line(line):
            if not _RULE.match(line):
                table.append(cells_of(line))
            continue
        if len(table) == 1:
            yield TableRow(table[0], None)
        elif table:
            yield from (TableRow(row, table[0]) for row in table[1:])
        table = []


def csv_row(line: str) -> TableRow | None:
    """A ``column: value; column: value`` line of the CSV loader, or None."""
    names: list[str] = []
    values: list[str] = []
    for field in line.split("; "):
        match = _CSV_FIELD.match(field.strip())
        if not match:
            return None
        names.append(match.group(1).strip())
        values.append(match.group(2).strip())
    return TableRow(tuple(values), tuple(names)) if names else None


def render(rows: list[TableRow], citation: str) -> str:
    """Rows of one table as Markdown, header first, the citation in the last cell (rows
    without a header as plain pipe lines: a Markdown table needs one)."""
    header = rows[0].header
    width = max(len(row.cells) for row in rows)
    lines: list[str] = []
    if header:
        width = max(width, len(header))
        lines += [_line(header, width), _line(("---",) * width, width)]
    for number, row in enumerate(rows, start=1):
        cells = list(row.cells)
        if number == len(rows):
            cells[-1] = f"{cells[-1]} {citation}".strip()
        lines.append(_line(tuple(cells), width if header else len(cells)))
    return "\n".join(lines)


def _line(cells: tuple[str, ...], width: int) -> str:
    padded = [*cells, *[""] * (width - len(cells))]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in padded) + " |"
