"""Export the filtered conversations, one row per message, as CSV or JSONL.

Rows come from a server-side cursor in batches and leave as text chunks, so an export of
millions of messages never sits in memory and starts arriving at once. A message's
sources are reduced to the cited ones (file, page, chunk, score): the snippets are in the
transcript and would only swell the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Chat, Department, Feedback, Message, User
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
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
BATCH_ROWS = 2000


def _export_query(reach: Reach, criteria: ConversationFilter, dialect: str) -> Any:
    return (
        select(
            Chat.id,
            Chat.title,
            User.email,
            Department.code,
            Message.id,
            Message.role,
            Message.content,
            Message.sources,
            Feedback.value,
            Feedback.comment,
            Message.model,
            Message.latency_ms,
            Message.prompt_tokens,
            Message.completion_tokens,
            Message.error,
            Message.created_at,
            Chat.created_at,
        )
        .select_from(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .join(User, User.id == Chat.user_id)
        .outerjoin(Department, Department.id == User.department_id)
        .outerjoin(Feedback, Feedback.message_id == Message.id)
        .where(*conversation_conditions(reach, criteria, dialect))
        .order_by(Message.chat_id, Message.created_at, Message.id)
    )


def _cited(sources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [
        {
            "file": source.get("file_name"),
            "page": source.get("page"),
            "chunk_id": source.get("chunk_id"),
            "score": source.get("score"),
        }
        for source in sources or ()
        if source.get("cited")
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _record(row: Any) -> dict[str, Any]:
    (chat_id, title, email, department, message_id, role, content, sources, value, comment,
     model, latency, prompt_tokens, completion_tokens, error, created, started) = row  # fmt: skip
    return {
        "conversation_id": str(chat_id),
        "conversation_title": title,
        "user": email,
        "department": department,
        "message_id": str(message_id),
        "role": role,
        "content": content,
        "sources": _cited(sources),
        "feedback": {1: "up", -1: "down"}.get(value),
        "feedback_comment": comment,
        "model": model,
        "latency_ms": latency,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "error": error,
        "created_at": _iso(created),
        "conversation_started": _iso(started),
    }


async def export_records(
    session: AsyncSession, reach: Reach, criteria: ConversationFilter
) -> AsyncIterator[list[dict[str, Any]]]:
    """Batches of exported messages, in conversation order, streamed from the database."""
    query = _export_query(reach, criteria, dialect_of(session))
    result = await session.stream(query.execution_options(yield_per=BATCH_ROWS))
    async for partition in result.partitions(BATCH_ROWS):
        yield [_record(row) for row in partition]


def _csv_text(records: Iterable[dict[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(COLUMNS)
    for record in records:
        record["sources"] = json.dumps(record["sources"]) if record["sources"] else ""
        writer.writerow([record[column] for column in COLUMNS])
    return buffer.getvalue()


def _jsonl_text(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


async def export_text(
    session: AsyncSession, reach: Reach, criteria: ConversationFilter, form: ExportFormat
) -> AsyncIterator[str]:
    """The export as text chunks of about `BATCH_ROWS` messages each (CSV has a header)."""
    if form == "csv":
        yield _csv_text((), header=True)
    async for batch in export_records(session, reach, criteria):
        yield _csv_text(batch, header=False) if form == "csv" else _jsonl_text(batch)
