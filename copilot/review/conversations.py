"""The conversations list: filters, text search, sorting and pages, inside a reviewer's reach.

The page query touches chats and users only; the filters that depend on messages
(feedback, errors, text) are EXISTS subqueries the planner can turn into semi-joins, and
the per-chat figures (messages, feedback) are computed for the page's rows alone. So the
cost of a page does not grow with the number of messages in the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.types import Text

from copilot.db.models import Chat, Department, Feedback, Message, User
from copilot.review.reach import Reach

PAGE_SIZE = 50
#: Pages beyond this are refused (their offset overflows the databases' integers long
#: before); any page up to it past the end of a listing is simply empty.
MAX_PAGE = 1_000_000
FEEDBACK_CHOICES = ("", "negative", "positive", "none")
SORTS = {"last_activity": Chat.updated_at, "started": Chat.created_at}
#: PostgreSQL's text search configuration; the GIN index on messages uses the same one.
TEXT_SEARCH_CONFIG = "english"


class FilterError(ValueError):
    """A filter value that makes no sense; the message names the field."""


def day_param(params: Mapping[str, str], name: str) -> date | None:
    """A YYYY-MM-DD query parameter, None when empty; FilterError naming it when bad."""
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise FilterError(f"{name}: '{value}' is not a date (YYYY-MM-DD)") from error


def page_param(params: Mapping[str, str]) -> int:
    """The `page` query parameter (1 when absent); FilterError naming it when bad."""
    text = params.get("page", "1").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise FilterError(f"page: '{shown}' is not a page number (1 to {MAX_PAGE})")
    return int(text)


def before_end_of(column: Any, day: date) -> ColumnElement[bool]:
    """`column` falls on or before `day` (the last day there is has no end to compare)."""
    if day == date.max:
        return true()
    return column < day_start(day + timedelta(days=1))


@dataclass(frozen=True)
class ConversationFilter:
    user: str = ""  # part of an email or a name
    department: str = ""  # a department code
    start: date | None = None  # conversations active on or after this day
    end: date | None = None  # ... and started on or before this day
    feedback: str = ""  # "", negative, positive, none
    has_error: bool = False
    text: str = ""  # words that a question (or an answer citing nothing) contains
    sort: str = "last_activity"
    descending: bool = True
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ConversationFilter:
        """Read a filter from query parameters; a bad value raises FilterError naming it."""

        feedback = params.get("feedback", "").strip()
        if feedback not in FEEDBACK_CHOICES:
            raise FilterError(f"feedback: '{feedback}' is not one of negative, positive, none")
        sort = params.get("sort", "last_activity").strip() or "last_activity"
        if sort not in SORTS:
            raise FilterError(f"sort: '{sort}' is not one of {', '.join(SORTS)}")
        page = page_param(params)
        start, end = day_param(params, "start"), day_param(params, "end")
        if start and end and start > end:
            raise FilterError("start: the range starts after it ends")
        return cls(
            user=params.get("user", "").strip(),
            department=params.get("department", "").strip().upper(),
            start=start,
            end=end,
            feedback=feedback,
            has_error=params.get("has_error", "") in ("1", "true", "on", "yes"),
            text=params.get("text", "").strip(),
            sort=sort,
            descending=params.get("order", "desc") != "asc",
            page=page,
        )

    def as_params(self, **changes: Any) -> dict[str, str]:
        """The filter as query parameters (empty ones left out), e.g. for page links."""
        values = asdict(replace(self, **changes))
        params = {
            "user": values["user"],
            "department": values["department"],
            "start": values["start"].isoformat() if values["start"] else "",
            "end": values["end"].isoformat() if values["end"] else "",
            "feedback": values["feedback"],
            "has_error": "1" if values["has_error"] else "",
            "text": values["text"],
            "sort": "" if values["sort"] == "last_activity" else values["sort"],
            "order": "" if values["descending"] else "asc",
            "page": "" if values["page"] == 1 else str(values["page"]),
        }
        return {key: value for key, value in params.items() if value}


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def text_matches(content: Any, text: str, dialect: str) -> ColumnElement[bool]:
    """`content` contains the words of `text`.

    PostgreSQL: full-text search (stemmed English, web-search syntax) over the GIN index.
    SQLite: every word as a case-insensitive substring, a working equivalent for the
    embedded scale.
    """
    if dialect == "postgresql":
        config: Any = literal_column(f"'{TEXT_SEARCH_CONFIG}'")
        return func.to_tsvector(config, content).op("@@")(func.websearch_to_tsquery(config, text))
    words = [word for word in text.split() if word]
    return and_(*(content.ilike(f"%{escape_like(word)}%", escape="\\") for word in words))


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def conversation_conditions(
    reach: Reach, criteria: ConversationFilter, dialect: str
) -> list[ColumnElement[bool]]:
    """WHERE conditions on Chat joined to User (and Department) for the reach and filter."""
    conditions: list[ColumnElement[bool]] = [reach.covers(User.department_id)]
    if criteria.user:
        pattern = f"%{escape_like(criteria.user)}%"
        conditions.append(
            or_(
                User.email.ilike(pattern, escape="\\"),
                User.display_name.ilike(pattern, escape="\\"),
            )
        )
    if criteria.department:
        conditions.append(Department.code == criteria.department)
    if criteria.start:
        conditions.append(Chat.updated_at >= day_start(criteria.start))
    if criteria.end:
        conditions.append(before_end_of(Chat.created_at, criteria.end))
    # The subqueries use their own aliases: the export joins messages and feedback too,
    # and must not have them correlated away.
    said, rated = aliased(Message), aliased(Feedback)
    if criteria.feedback in ("negative", "positive"):
        value = -1 if criteria.feedback == "negative" else 1
        conditions.append(exists().where(rated.chat_id == Chat.id, rated.value == value))
    elif criteria.feedback == "none":
        conditions.append(~exists().where(rated.chat_id == Chat.id))
    if criteria.has_error:
        conditions.append(exists().where(said.chat_id == Chat.id, said.error.is_not(None)))
    if criteria.text:
        conditions.append(
            exists().where(
                said.chat_id == Chat.id,
                searchable(said),
                text_matches(said.content, criteria.text, dialect),
            )
        )
    return conditions


def searchable(message: Any) -> ColumnElement[bool]:
    """Messages a text search may look into: what people asked, and answers citing nothing.

    An answer quotes its sources, and a source may be above the reviewer's clearance
    (the transcript redacts it): searching such answers would let a reviewer test words
    against text they may not read.
    """
    return or_(message.role == "user", cast(message.sources, Text) == "[]")


def filtered_chats(reach: Reach, criteria: ConversationFilter, dialect: str) -> Select[Any]:
    """Chats (joined to their user and department) that the reach and filter select."""
    return (
        select(Chat.id)
        .join(User, User.id == Chat.user_id)
        .outerjoin(Department, Department.id == User.department_id)
        .where(*conversation_conditions(reach, criteria, dialect))
    )


@dataclass
class ConversationRow:
    id: uuid.UUID
    title: str
    user_email: str
    user_name: str
    department: str | None
    started: datetime
    last_activity: datetime
    deleted: bool
    messages: int = 0
    errors: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0


@dataclass
class ConversationPage:
    rows: list[ConversationRow]
    criteria: ConversationFilter
    has_next: bool
    page_size: int = PAGE_SIZE


async def list_conversations(
    session: AsyncSession, reach: Reach, criteria: ConversationFilter, page_size: int = PAGE_SIZE
) -> ConversationPage:
    """One page of conversations, newest activity first unless the filter sorts otherwise."""
    dialect = dialect_of(session)
    order_column = SORTS[criteria.sort]
    ordering = (
        (order_column.desc(), Chat.id.desc())
        if criteria.descending
        else (
            order_column.asc(),
            Chat.id.asc(),
        )
    )
    query = (
        select(
            Chat.id,
            Chat.title,
            User.email,
            User.display_name,
            Department.code,
            Chat.created_at,
            Chat.updated_at,
            Chat.deleted_at,
        )
        .join(User, User.id == Chat.user_id)
        .outerjoin(Department, Department.id == User.department_id)
        .where(*conversation_conditions(reach, criteria, dialect))
        .order_by(*ordering)
        .offset((criteria.page - 1) * page_size)
        .limit(page_size + 1)
    )
    found = (await session.execute(query)).all()
    rows = [
        ConversationRow(
            id=chat_id,
            title=title,
            user_email=email,
            user_name=name,
            department=code,
            started=started,
            last_activity=updated,
            deleted=deleted is not None,
        )
        for chat_id, title, email, name, code, started, updated, deleted in found[:page_size]
    ]
    await _add_figures(session, rows)
    return ConversationPage(rows, criteria, has_next=len(found) > page_size, page_size=page_size)


async def _add_figures(session: AsyncSession, rows: list[ConversationRow]) -> None:
    """Message, error and feedback counts for the rows of one page."""
    if not rows:
        return
    figures = (
        select(
            Message.chat_id,
            func.count(Message.id),
            func.count(Message.error),
            func.count(case((Feedback.value == 1, 1))),
            func.count(case((Feedback.value == -1, 1))),
        )
        .outerjoin(Feedback, Feedback.message_id == Message.id)
        .where(Message.chat_id.in_([row.id for row in rows]))
        .group_by(Message.chat_id)
    )
    by_chat = {chat_id: counts for chat_id, *counts in (await session.execute(figures)).all()}
    for row in rows:
        row.messages, row.errors, row.thumbs_up, row.thumbs_down = by_chat.get(row.id, (0, 0, 0, 0))


async def department_codes(session: AsyncSession, reach: Reach) -> list[str]:
    """The departments a reviewer may filter by."""
    query = select(Department.code).where(reach.covers(Department.id)).order_by(Department.code)
    return list((await session.scalars(query)).all())
