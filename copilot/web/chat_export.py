"""`GET /chats/{id}/export.md` and `.json`: one's own chat, to keep or pass on.

Only the chat's owner gets it (anyone else, and a deleted chat, get 404: a chat id says
nothing about whether it exists). Each answer comes with its citations (number, file,
page or place, snippet); an answer that drew on a file the owner may no longer read shows
the same note as a colleague's shared view (copilot.web.readable_chat).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.answer.citations import source_label, source_place
from copilot.db.models import Chat, Feedback, Message
from copilot.web.files import content_disposition, signed_in_principal
from copilot.web.readable_chat import ReadableChat
from copilot.web.runtime import current
from copilot.web.sources import shown_answer

router = APIRouter()

ExportForm = Literal["md", "json"]
MEDIA_TYPES: dict[str, str] = {
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
}
SPEAKERS = {"user": "You", "assistant": "Copilot"}
FEEDBACK = {1: "up", -1: "down"}


@router.get("/chats/{chat_id}/export.{form}", include_in_schema=False)
async def export_chat(chat_id: uuid.UUID, form: ExportForm, request: Request) -> Response:
    principal = await signed_in_principal(request)
    async with current().sessions() as session:
        chat = await session.get(Chat, chat_id)
        if chat is None or chat.deleted_at is not None or str(chat.user_id) != principal.user_id:
            raise HTTPException(404, "no such chat")
        readable = await ReadableChat.load(session, chat.id, principal)
        ratings = await _ratings(session, chat, readable.messages)
    record = chat_record(chat, readable.messages, ratings)
    body = chat_markdown(record) if form == "md" else json.dumps(record, ensure_ascii=False)
    return Response(
        body,
        media_type=MEDIA_TYPES[form],
        headers={
            "Content-Disposition": content_disposition("attachment", f"{chat.title}.{form}"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def _ratings(
    session: AsyncSession, chat: Chat, messages: list[Message]
) -> dict[str, Feedback]:
    ids = [m.id for m in messages if m.role == "assistant"]
    if not ids:
        return {}
    rows = await session.scalars(
        select(Feedback).where(Feedback.user_id == chat.user_id, Feedback.message_id.in_(ids))
    )
    return {str(row.message_id): row for row in rows}


def chat_record(
    chat: Chat, messages: list[Message], ratings: dict[str, Feedback]
) -> dict[str, Any]:
    """The chat as plain data: what the JSON export is, and the Markdown is written from."""
    return {
        "id": str(chat.id),
        "title": chat.title,
        "created_at": _iso(chat.created_at),
        "exported_at": _iso(datetime.now(UTC)),
        "messages": [_message_record(m, ratings.get(str(m.id))) for m in messages],
    }


def _message_record(message: Message, rating: Feedback | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": str(message.id),
        "role": message.role,
        "created_at": _iso(message.created_at),
        "content": shown_answer(message.content),
    }
    if message.role == "assistant":
        record["citations"] = [
            _citation(source, number)
            for number, source in enumerate(message.sources or [], start=1)
            if source.get("cited") is not False
        ]
        if rating is not None:
            record["feedback"] = {"value": FEEDBACK[rating.value], "comment": rating.comment}
    return record


def _citation(source: dict[str, Any], position: int) -> dict[str, Any]:
    return {
        "number": source.get("number") or position,
        "file": source.get("file_name"),
        "file_id": source.get("file_id"),
        "page": source.get("page"),
        "place": source_place(source),
        "snippet": source.get("snippet"),
    }


def chat_markdown(record: dict[str, Any]) -> str:
    """The chat for a person: each message under its speaker and time, each answer followed
    by its citations with the quoted passage."""
    lines = [
        f"# {record['title']}",
        "",
        f"Chat of {record['created_at']}, exported {record['exported_at']} from Copilot.",
        "",
    ]
    for message in record["messages"]:
        lines += [f"## {SPEAKERS[message['role']]} ({message['created_at']})", ""]
        lines += [message["content"].strip(), ""]
        citations = message.get("citations") or []
        if citations:
            lines += ["Sources:", ""]
            for cited in citations:
                label = source_label({"file_name": cited["file"], **_place_of(cited)})
                lines.append(f"{cited['number']}. {label}")
                snippet = " ".join(str(cited.get("snippet") or "").split())
                if snippet:
                    lines.append(f"   > {snippet}")
            lines.append("")
        feedback = message.get("feedback")
        if feedback:
            comment = f": {feedback['comment']}" if feedback.get("comment") else ""
            lines += [f"Rated {feedback['value']}{comment}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _place_of(cited: dict[str, Any]) -> dict[str, Any]:
    return {"place": cited["place"]} if cited.get("place") else {}


def _iso(moment: datetime) -> str:
    return (moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
