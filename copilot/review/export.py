"""Export the filtered conversations, one row per message, as CSV or JSONL.

Rows come from a server-side cursor in batches and leave as text chunks, so an export of
millions of messages never sits in memory and starts arriving at once. A message's
sources are reduced to the cited ones (file, page, chunk, score): the snippets are in the
transcript and would only swell the file. The database builds that summary and the
rows are written as they come, so the export runs at the speed of the cursor.

Answers and sources are limited to what the reviewer may read (`Clearance.redact`, the
files' access fields fetched once per batch), and CSV cells that a spreadsheet would run
as a formula are neutralised as OWASP recommends.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import DateTime, Text, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Chat, Department, Feedback, Message, User
from copilot.review.clearance import Clearance, FileFacts, file_facts
from copilot.review.conversations import (
    ConversationFilter,
    conversation_conditions,
    dialect_of,
)
from copilot.review.reach import Reach

ExportFormat = Literal["csv", "jsonl"]
COLUMNS = (
    "conversation_id",
    "conversation_title",
    "user",
    "department",
    "message_id",
    "role",
    "content",
    "sources",
    "feedback",
    "feedback_comment",
    "model",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "created_at",
    "conversation_started",
    "removed_at",  # set when an edit of an earlier question took the message out of the chat
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
BATCH_ROWS = 2000


def cited_sources_json(dialect: str) -> Any:
    """A message's cited sources as compact JSON text (file, page, chunk, score, file id), built by
    the database: the stored snippets never travel to Python just to be dropped."""
    if dialect == "postgresql":
        sql = (
            "(SELECT coalesce(jsonb_agg(jsonb_build_object('file', s->>'file_name', "
            "'page', s->'page', 'chunk_id', s->>'chunk_id', 'score', s->'score', "
            "'file_id', s->>'file_id')), "
            "'[]'::jsonb)::text FROM jsonb_array_elements(messages.sources) AS s "
            "WHERE s->>'cited' = 'true')"
        )
    else:
        sql = (
            "(SELECT json_group_array(json_object('file', json_extract(s.value, '$.file_name'), "
            "'page', json_extract(s.value, '$.page'), "
            "'chunk_id', json_extract(s.value, '$.chunk_id'), "
            "'score', json_extract(s.value, '$.score'), "
            "'file_id', json_extract(s.value, '$.file_id'))) "
            "FROM json_each(messages.sources) AS s WHERE json_extract(s.value, '$.cited'))"
        )
    return literal_column(sql, type_=Text)


def source_file_ids_json(dialect: str) -> Any:
    """The ids of every file a message's sources point at (cited or not: the answer was
    written from all of them), as a JSON array text."""
    if dialect == "postgresql":
        sql = (
            "(SELECT coalesce(jsonb_agg(DISTINCT s->>'file_id'), '[]'::jsonb)::text "
            "FROM jsonb_array_elements(messages.sources) AS s)"
        )
    else:
        sql = (
            "(SELECT json_group_array(DISTINCT json_extract(s.value, '$.file_id')) "
            "FROM json_each(messages.sources) AS s)"
        )
    return literal_column(sql, type_=Text)


def _export_query(reach: Reach, criteria: ConversationFilter, dialect: str) -> Any:
    """One row per message, its columns in the order of COLUMNS."""

    # Plain timestamps: the rows are only formatted, and UTCDateTime's per-value check
    # would cost more than the rest of the row.
    def stamp(column: Any) -> Any:
        return type_coerce(column, DateTime(timezone=True))

    return (
        select(
            Chat.id,
            Chat.title,
            User.email,
            Department.code,
            Message.id,
            Message.role,
            Message.content,
            cited_sources_json(dialect),
            Feedback.value,
            Feedback.comment,
            Message.model,
            Message.latency_ms,
            Message.prompt_tokens,
            Message.completion_tokens,
            Message.error,
            stamp(Message.created_at),
            stamp(Chat.created_at),
            stamp(Message.deleted_at),
            source_file_ids_json(dialect),  # for the redaction; not exported
        )
        .select_from(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .join(User, User.id == Chat.user_id)
        .outerjoin(Department, Department.id == User.department_id)
        .outerjoin(Feedback, Feedback.message_id == Message.id)
        .where(*conversation_conditions(reach, criteria, dialect))
        .order_by(Message.chat_id, Message.created_at, Message.id)
    )


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back the stored UTC time without its zone."""
    if value is None:
        return None
    return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


FEEDBACK_LABELS = {1: "up", -1: "down"}


CONTENT, SOURCES, FILE_IDS = COLUMNS.index("content"), COLUMNS.index("sources"), len(COLUMNS)
#: What a spreadsheet reads as a formula at the start of a cell (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _values(row: Any, clearance: Clearance, facts: dict[str, FileFacts]) -> list[Any]:
    """A row's values ready to write, in the order of COLUMNS (sources as JSON text)."""
    values = list(row)
    file_ids = json.loads(values.pop(FILE_IDS) or "[]")
    values[0], values[4] = str(values[0]), str(values[4])
    values[8] = FEEDBACK_LABELS.get(values[8])
    values[15], values[16], values[17] = _iso(values[15]), _iso(values[16]), _iso(values[17])
    if file_ids:
        values[CONTENT], values[SOURCES] = _redacted(values, file_ids, clearance, facts)
    return values


def _redacted(
    values: list[Any], file_ids: list[str], clearance: Clearance, facts: dict[str, FileFacts]
) -> tuple[str, str]:
    every = [{"file_id": file_id} for file_id in file_ids]
    content, _ = clearance.redact(values[CONTENT], every, facts)
    cited = json.loads(values[SOURCES] or "[]")
    shown = []
    for found in cited:
        note = clearance.refusal_note(facts.get(str(found.get("file_id"))))
        # A hidden source keeps the summary's keys, with the note in place of its file.
        shown.append(found if note is None else dict.fromkeys(found, None) | {"file": note})
    return content, json.dumps(shown, separators=(",", ":"), ensure_ascii=False)


def _spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading quote (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


async def _batches(
    session: AsyncSession, reach: Reach, criteria: ConversationFilter
) -> AsyncIterator[tuple[Sequence[Any], dict[str, FileFacts]]]:
    """The exported rows in batches, from a server-side cursor (PostgreSQL), each with the
    access fields of the files its messages cite."""
    query = _export_query(reach, criteria, dialect_of(session))
    connection = await session.connection()
    result = await connection.stream(query.execution_options(yield_per=BATCH_ROWS))
    batches = aiter(result.partitions(BATCH_ROWS))
    # One batch ahead: the database reads the next rows while this process writes these.
    ahead = asyncio.ensure_future(anext(batches))
    try:
        while True:
            try:
                batch = await ahead
            except StopAsyncIteration:
                return
            # Looked up while no fetch is in flight: one connection, one statement at a time.
            ids = {i for row in batch for i in json.loads(row[FILE_IDS] or "[]") if i}
            facts = await file_facts(session, ids)
            ahead = asyncio.ensure_future(anext(batches))
            await asyncio.sleep(0)  # let the next fetch go out before the CPU work
            yield batch, facts
    finally:
        # Stopped early (the download was cancelled): let the fetch in flight finish, so
        # the connection goes back to the pool clean.
        if not ahead.done():
            with contextlib.suppress(Exception, StopAsyncIteration):
                await ahead


def _csv_text(rows: Iterable[Any], clearance: Clearance, facts: dict[str, FileFacts]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        values = _values(row, clearance, facts)
        if values[SOURCES] == "[]":
            values[SOURCES] = ""
        writer.writerow([_spreadsheet_safe(value) for value in values])
    return buffer.getvalue()


def _jsonl_text(rows: Iterable[Any], clearance: Clearance, facts: dict[str, FileFacts]) -> str:
    lines = []
    for row in rows:
        record = dict(zip(COLUMNS, _values(row, clearance, facts), strict=True))
        record["sources"] = json.loads(record["sources"] or "[]")
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


async def export_text(
    session: AsyncSession, clearance: Clearance, criteria: ConversationFilter, form: ExportFormat
) -> AsyncIterator[str]:
    """The export as text chunks of about `BATCH_ROWS` messages each (CSV has a header)."""
    if form == "csv":
        header = io.StringIO()
        csv.writer(header).writerow(COLUMNS)
        yield header.getvalue()
    async for batch, facts in _batches(session, clearance.reach, criteria):
        if form == "csv":
            yield _csv_text(batch, clearance, facts)
        else:
            yield _jsonl_text(batch, clearance, facts)
