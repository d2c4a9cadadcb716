"""A chat as one person may read it: a colleague's view of a shared chat, one's own export.

An answer quotes the sources it drew on, so an answer that drew on a file the reader may
not read (by the search rule, `Clearance.of_reader`: the same files their own search
finds) shows a note in its place, and so does each such source; the rest is as stored.
A file that no longer exists cannot be checked and is treated the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Message
from copilot.review.clearance import Clearance, FileFacts, file_facts, source_file_ids
from copilot.users import Principal

SHOWN_ROLES = ("user", "assistant")


async def shown_messages(session: AsyncSession, chat_id: uuid.UUID) -> list[Message]:
    """The chat's user and assistant messages in order (removed ones left out); at equal
    times the question comes first."""
    user_first = (Message.role != "user").label("user_first")
    return list(
        (
            await session.scalars(
                select(Message)
                .where(
                    Message.chat_id == chat_id,
                    Message.role.in_(SHOWN_ROLES),
                    Message.deleted_at.is_(None),
                )
                .order_by(Message.created_at, user_first, Message.id)
            )
        ).all()
    )


@dataclass(frozen=True)
class ReadableChat:
    """The chat's shown messages as `reader` may read them (copies: nothing is written)."""

    messages: list[Message]

    @classmethod
    async def load(
        cls, session: AsyncSession, chat_id: uuid.UUID, reader: Principal
    ) -> ReadableChat:
        stored = await shown_messages(session, chat_id)
        sources = [s for m in stored for s in _sources(m)]
        facts = await file_facts(session, source_file_ids(sources))
        clearance = Clearance.of_reader(reader)
        return cls([_as_read(message, clearance, facts) for message in stored])


def _sources(message: Message) -> list[dict[str, Any]]:
    return [s for s in message.sources or [] if isinstance(s, dict)]


def _as_read(message: Message, clearance: Clearance, facts: dict[str, FileFacts]) -> Message:
    """A detached copy of `message`, its answer and sources redacted for the reader."""
    content, sources = message.content, _sources(message)
    if message.role == "assistant" and sources:
        content, sources = clearance.redact(content, sources, facts)
    return Message(
        id=message.id,
        chat_id=message.chat_id,
        role=message.role,
        content=content,
        sources=sources,
        model=message.model,
        # Whether it failed, not why: the stored error is for admins.
        error="error" if message.error else None,
        run_id=message.run_id,
        created_at=message.created_at,
    )
