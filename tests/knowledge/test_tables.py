"""Pipe tables and CSV rows as the loaders render them: read back with their header, and
each chunk of a long table starting with that header."""

from __future__ import annotations

from copilot.knowledge.chunking import Chunker
from copilot.knowledge.loaders import Page
from copilot.knowledge.tables import TableRow, csv_row, header_above, pipe_table_rows, render

MARKDOWN = (
    "Prices\n\nItem | Price | # In stock\n---|---|---\n"
    "Juicy Apples | 1.99 | 739\nBananas | 1.89 | 6"
)


def test_pipe_table_rows_carry_the_first_row_as_header() -> None:
    rows = list(pipe_table_rows(MARKDOWN))
    assert rows == [
        TableRow(("Juicy Apples", "1.99", "739"), ("Item", "Price", "# In stock")),
        TableRow(("Bananas", "1.89", "6"), ("Item", "Price", "# In stock")),
    ]
    assert rows[0].text == "Item: Juicy Apples; Price: 1.99; # In stock: 739"
    # A DOCX table has no rule line; a one-row table has no header.
    docx = list(pipe_table_rows("| Expense | Limit |\n| Meals | EUR 60 |\n\nlone | row"))
    assert docx == [
        TableRow(("Meals", "EUR 60"), ("Expense", "Limit")),
        TableRow(("lone", "row"), None),
    ]


def test_csv_rows_are_read_back_with_their_column_names() -> None:
    assert csv_row("Category: Taxi; Limit: EUR 50; Approval: manager") == TableRow(
        ("Taxi", "EUR 50", "manager"), ("Category", "Limit", "Approval")
    )
    assert csv_row("The limit is fifty euros; ask your manager.") is None


def test_rows_render_as_markdown_with_the_citation_in_the_last_cell() -> None:
    rows = list(pipe_table_rows(MARKDOWN))[:1]
    assert render(rows, "[3]") == (
        "| Item | Price | # In stock |\n| --- | --- | --- |\n| Juicy Apples | 1.99 | 739 [3] |"
    )
    assert render([TableRow(("a", "b"), None)], "[1]") == "| a | b [1] |"


def test_header_above_a_piece_that_starts_inside_a_table() -> None:
    start = MARKDOWN.index("Bananas")
    assert header_above(MARKDOWN, start) == "Item | Price | # In stock\n---|---|---"
    assert header_above(MARKDOWN, MARKDOWN.index("Item")) is None  # the table's own top
    assert header_above(MARKDOWN, MARKDOWN.index("Apples")) is None  # mid-line
    assert header_above(MARKDOWN, 0) is None


def test_every_chunk_of_a_long_table_starts_with_its_header() -> None:
    header = "Expense | Limit | Approval"
    body = "\n".join(f"Item {n} | EUR {n} per day | manager {n}" for n in range(60))
    chunker = Chunker(lambda text: len(text.split()), size=60, overlap=0)
    drafts = chunker.split([Page(number=1, text=f"Limits\n\n{header}\n{body}")])
    table_chunks = [d for d in drafts if "Item " in d.text]
    assert len(table_chunks) > 3
    assert all(d.text.startswith(f"{header}\n") for d in table_chunks)
    assert all(d.text.count(header) == 1 for d in table_chunks)


def test_bars_in_prose_or_formulas_are_not_a_table_header() -> None:
    # From the French PDF fixture: lines with bars that do not line up as columns.
    text = "Soit |K ∪ cover(A)| le nombre de références\n|cover(D)| = 5 et le rappel.\n"
    start = text.index("|cover(D)|")
    assert header_above(text, start) is None
