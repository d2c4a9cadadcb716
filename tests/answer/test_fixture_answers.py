"""The questions a new user asked of the shared fixtures, answered through the chat's own
chain on the embedded engines: table rows with their header, a German heading, a DOCX table,
and "not found" for a question none of them answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import docx
import pytest

from copilot.answer.chain import AnswerChain, AnswerResult
from copilot.answer.extractive import NOT_FOUND_TEXT, WEAK_EVIDENCE_TEXT, ExtractiveAnswerer
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from tests.conftest import FIXTURES, People


def _expense_policy(path: Path) -> Path:
    """A DOCX travel policy whose limits are in a table, as HR writes them."""
    document = docx.Document()
    document.add_heading("Travel expenses", level=1)
    document.add_paragraph("Expenses are reimbursed within the limits below.")
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Expense", "Limit", "Approval"], strict=True):
        cell.text = text
    for row in [
        ("Meals", "EUR 60 per day", "none"),
        ("Taxi", "EUR 50 per ride", "manager"),
        ("Hotel", "EUR 180 per night", "manager"),
    ]:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    document.save(path)
    return path


@pytest.fixture
async def chain(kb: KnowledgeBase, people: People, tmp_path: Path) -> AnswerChain:
    owner = Ownership(uuid.UUID(people.admin.user_id), scope="company")
    for path in [
        FIXTURES / "simple-table.md",
        FIXTURES / "fake-html-lang-de.html",
        _expense_policy(tmp_path / "expense-policy.docx"),
    ]:
        result = await ingest_file(kb, path, owner)
        assert result.outcome == "indexed", result.error
    return AnswerChain(
        kb.search, model=None, model_name="extractive", extractive=ExtractiveAnswerer(kb.embeddings)
    )


def _cited_files(result: AnswerResult) -> list[str]:
    return [source["file_name"] for source in result.cited_sources]


async def test_a_table_row_is_answered_with_its_header(chain: AnswerChain, people: People) -> None:
    result = await chain.answer("What is the price of Juicy Apples?", people.bob.scope)
    number = result.cited[0]
    assert result.text == (
        "| Item | Price | # In stock |\n| --- | --- | --- |\n"
        f"| Juicy Apples | 1.99 | 739 [{number}] |"
    )
    assert _cited_files(result) == ["simple-table.md"]


async def test_a_german_question_over_a_german_heading(chain: AnswerChain, people: People) -> None:
    result = await chain.answer(
        "Welchen Zeitraum umfasst der Jahresabschluss zum Geschäftsjahr 2020?", people.bob.scope
    )
    assert "Jahresabschluss zum Geschäftsjahr vom 01.01.2020 bis zum 31.12.2020" in result.text
    assert _cited_files(result) == ["fake-html-lang-de.html"]


async def test_a_docx_table_row_answers_with_its_header(chain: AnswerChain, people: People) -> None:
    result = await chain.answer("What is the daily limit for meals?", people.bob.scope)
    assert result.text.startswith("| Expense | Limit | Approval |\n| --- | --- | --- |\n")
    assert "| Meals | EUR 60 per day | none [" in result.text
    assert "Taxi" not in result.text
    assert _cited_files(result) == ["expense-policy.docx"]


async def test_a_question_the_sources_do_not_answer_is_not_found(
    chain: AnswerChain, people: People
) -> None:
    for question in ["Who won the football world cup in 2018?", "How do I reset my VPN password?"]:
        result = await chain.answer(question, people.bob.scope)
        assert result.text == NOT_FOUND_TEXT or result.text.startswith(WEAK_EVIDENCE_TEXT)
        assert not result.text.startswith("|")
