"""A whole conversation as an admin reads it, and the negative-feedback triage queue.

Both show answers and their cited snippets only as far as the reviewer may read the cited
files (`Clearance.redact`): the access fields of a page's files come in one query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, case, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from copilot.db.models import Chat, Department, Feedback, Message, User
from copilot.review.clearance import Clearance, file_facts, source_file_ids

TRIAGE_PAGE_SIZE = 25


@dataclass
class FeedbackNote:
    value: int
    comment: str | None
    given_by: str
    given_at: datetime


@dataclass
class TranscriptMessage:
    id: uuid.UUID
    role: str
    content: str
    created_at: datetime
    model: str | None
    latency_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None
    sources: list[dict[str, Any]]
    feedback: list[FeedbackNote] = field(default_factory=list)
    # An edit in the chat removes what followed the edited question (removed_at) and keeps
    # the question's earlier text as a removed row that points at its new version.
    removed_at: datetime | None = None
    superseded_by: uuid.UUID | None = None

    @property
    def cited_sources(self) -> list[dict[str, Any]]:
        return [source for source in self.sources if source.get("cited")]


@dataclass
class Transcript:
    chat_id: uuid.UUID
    title: str
    user_email: str
    user_name: str
    department: str | None
    started: datetime
    last_activity: datetime
    deleted_at: datetime | None
    messages: list[TranscriptMessage]


async def load_transcript(
    session: AsyncSession, clearance: Clearance, chat_id: uuid.UUID
) -> Transcript | None:
    """The conversation with every message, source and feedback; None outside the reach."""
    reach = clearance.reach
    header = (
        await session.execute(
            select(Chat, User.email, User.display_name, User.department_id, Department.code)
            .join(User, User.id == Chat.user_id)
            .outerjoin(Department, Department.id == User.department_id)
            .where(Chat.id == chat_id)
        )
    ).first()
    if header is None:
        return None
    chat, email, name, department_id, code = header
    if not reach.includes(department_id):
        return None  # the same answer as a missing chat: never confirm what is hidden
    messages = [
        TranscriptMessage(
            id=m.id,
            role=m.role,
            content=m.content,
            created_at=m.created_at,
            model=m.model,
            latency_ms=m.latency_ms,
            prompt_tokens=m.prompt_tokens,
            completion_tokens=m.completion_tokens,
            error=m.error,
            sources=list(m.sources or []),
            removed_at=m.deleted_at,
            superseded_by=m.superseded_by,
        )
        for m in (
            await session.scalars(
                select(Message)
                .where(Message.chat_id == chat_id)
                # An earlier version of a question comes before the version that replaced it.
                .order_by(
                    Message.created_at,
                    case((Message.superseded_by.is_not(None), 0), else_=1),
                    Message.id,
                )
            )
        ).all()
    ]
    facts = await file_facts(
        session, {file_id for m in messages for file_id in source_file_ids(m.sources)}
    )
    for message in messages:
        if message.sources:
            message.content, message.sources = clearance.redact(
                message.content, message.sources, facts
            )
    by_id = {message.id: message for message in messages}
    notes = await session.execute(
        select(Feedback, User.email)
        .join(User, User.id == Feedback.user_id)
        .join(Message, Message.id == Feedback.message_id)
        .where(Message.chat_id == chat_id)
        .order_by(Feedback.updated_at)
    )
    for feedback, given_by in notes.all():
        by_id[feedback.message_id].feedback.append(
            FeedbackNote(feedback.value, feedback.comment, given_by, feedback.updated_at)
        )
    return Transcript(
        chat_id=chat.id,
        title=chat.title,
        user_email=email,
        user_name=name,
        department=code,
        started=chat.created_at,
        last_activity=chat.updated_at,
        deleted_at=chat.deleted_at,
        messages=messages,
    )


@dataclass
class TriageItem:
    feedback_id: uuid.UUID
    comment: str | None
    given_at: datetime
    user_email: str
    department: str | None
    chat_id: uuid.UUID
    chat_title: str
    question: str | None
    answer: str
    answer_error: str | None
    sources: list[dict[str, Any]]

    @property
    def cited_sources(self) -> list[dict[str, Any]]:
        return [source for source in self.sources if source.get("cited")]


def question_before_answer() -> ScalarSelect[str]:
    """A column for a query over answers (`Message`): the question asked just before it in
    the same chat, which is the question that answer answered."""
    asked = aliased(Message)
    return (
        select(asked.content)
        .where(
            asked.chat_id == Message.chat_id,
            asked.role == "user",
            asked.created_at <= Message.created_at,
            # A standing answer answered a standing question; one an edit removed may have
            # answered a question's earlier text (a removed row), which is preferred then.
            or_(Message.deleted_at.is_not(None), asked.deleted_at.is_(None)),
        )
        .order_by(asked.created_at.desc(), case((asked.deleted_at.is_(None), 1), else_=0))
        .limit(1)
        .scalar_subquery()
    )


async def negative_feedback(
    session: AsyncSession,
    clearance: Clearance,
    page: int = 1,
    page_size: int = TRIAGE_PAGE_SIZE,
) -> tuple[list[TriageItem], bool]:
    """Thumbs-down answers, newest first, each with the question it answered."""
    reach = clearance.reach
    question = question_before_answer()
    query = (
        select(
            Feedback.id,
            Feedback.comment,
            Feedback.updated_at,
            User.email,
            Department.code,
            Chat.id,
            Chat.title,
            question,
            Message.content,
            Message.error,
            Message.sources,
        )
        .join(Message, Message.id == Feedback.message_id)
        .join(Chat, Chat.id == Message.chat_id)
        .join(User, User.id == Chat.user_id)
        .outerjoin(Department, Department.id == User.department_id)
        .where(Feedback.value == -1, reach.covers(User.department_id))
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size + 1)
    )
    found = (await session.execute(query)).all()
    items = [
        TriageItem(
            feedback_id=row[0],
            comment=row[1],
            given_at=row[2],
            user_email=row[3],
            department=row[4],
            chat_id=row[5],
            chat_title=row[6],
            question=row[7],
            answer=row[8],
            answer_error=row[9],
            sources=list(row[10] or []),
        )
        for row in found[:page_size]
    ]
    facts = await file_facts(
        session, {file_id for item in items for file_id in source_file_ids(item.sources)}
    )
    for item in items:
        if item.sources:
            item.answer, item.sources = clearance.redact(item.answer, item.sources, facts)
    return items, len(found) > page_size
