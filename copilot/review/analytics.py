"""Usage figures over a date range, inside a reviewer's reach.

Aggregation happens in the database. The few things SQL spells differently on the two
engines (a day of a timestamp, percentiles, walking a JSON array) each have one small
function with both spellings.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, cast, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Date

from copilot.db.models import Chat, Department, Feedback, Message, User
from copilot.review.clearance import Clearance, file_facts
from copilot.review.conversations import before_end_of, day_start, dialect_of
from copilot.review.reach import Reach
from copilot.review.transcripts import question_before_answer

TOP = 10
#: An answer from the chain (it names its model), not a notice such as an upload's
#: confirmation or a rate-limit message, which the chat also shows as the assistant.
# A question counts once: the earlier text of an edited question is kept, not re-counted.
IS_QUESTION = and_(Message.role == "user", Message.superseded_by.is_(None))
IS_ANSWER = and_(Message.role == "assistant", Message.model.is_not(None))


@dataclass
class DayFigures:
    day: date
    questions: int
    answers: int
    active_users: int


@dataclass
class Usage:
    start: date
    end: date
    days: list[DayFigures]
    questions: int
    answers: int
    errors: int
    active_users: int
    thumbs_up: int
    thumbs_down: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    top_files: list[tuple[str, int]]
    busiest_users: list[tuple[str, int]]
    busiest_departments: list[tuple[str, int]]
    unanswered: int
    unanswered_examples: list[tuple[datetime, str, str]] = field(default_factory=list)

    @property
    def positive_ratio(self) -> float | None:
        rated = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / rated if rated else None


def _in_range(reach: Reach, start: date, end: date) -> Select[Any]:
    """Messages in [start, end] of users inside the reach (to be narrowed by the caller)."""
    return (
        select()
        .select_from(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .join(User, User.id == Chat.user_id)
        .where(
            reach.covers(User.department_id),
            Message.created_at >= day_start(start),
            before_end_of(Message.created_at, end),
        )
    )


def _day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return cast(func.date_trunc("day", column), Date)
    return func.date(column)


async def usage(session: AsyncSession, clearance: Clearance, start: date, end: date) -> Usage:
    dialect = dialect_of(session)
    scoped = _in_range(clearance.reach, start, end)

    day = _day(Message.created_at, dialect).label("day")
    per_day = (
        await session.execute(
            scoped.add_columns(
                day,
                func.count().filter(IS_QUESTION),
                func.count().filter(IS_ANSWER),
                func.count(func.distinct(Chat.user_id)).filter(IS_QUESTION),
            )
            .group_by(day)
            .order_by(day)
        )
    ).all()
    days = [
        DayFigures(_as_date(d), questions, answers, users)
        for d, questions, answers, users in per_day
    ]

    totals = (
        await session.execute(
            scoped.add_columns(
                func.count().filter(IS_QUESTION),
                func.count().filter(IS_ANSWER),
                func.count(Message.error),
                func.count(func.distinct(Chat.user_id)),
            )
        )
    ).one()
    thumbs: dict[int, int] = dict(
        (
            await session.execute(
                scoped.join(Feedback, Feedback.message_id == Message.id)
                .add_columns(Feedback.value, func.count())
                .group_by(Feedback.value)
            )
        ).all()
    )
    p50, p95 = await _latency_percentiles(session, scoped, dialect)

    busiest_users = (
        await session.execute(
            scoped.add_columns(User.email, func.count())
            .where(IS_QUESTION)
            .group_by(User.email)
            .order_by(func.count().desc(), User.email)
            .limit(TOP)
        )
    ).all()
    busiest_departments = (
        await session.execute(
            scoped.outerjoin(Department, Department.id == User.department_id)
            .add_columns(func.coalesce(Department.code, "(none)"), func.count())
            .where(IS_QUESTION)
            .group_by(Department.code)
            .order_by(func.count().desc())
            .limit(TOP)
        )
    ).all()
    unanswered = scoped.where(IS_ANSWER, Message.error.is_(None), ~_cites_a_source(dialect))
    unanswered_count = (await session.execute(unanswered.add_columns(func.count()))).scalar_one()
    examples = await _unanswered_examples(session, unanswered)
    return Usage(
        start=start,
        end=end,
        days=days,
        questions=totals[0],
        answers=totals[1],
        errors=totals[2],
        active_users=totals[3],
        thumbs_up=thumbs.get(1, 0),
        thumbs_down=thumbs.get(-1, 0),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        top_files=await _top_cited_files(session, scoped, dialect, clearance),
        busiest_users=[(email, count) for email, count in busiest_users],
        busiest_departments=[(code, count) for code, count in busiest_departments],
        unanswered=unanswered_count,
        unanswered_examples=examples,
    )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def _latency_percentiles(
    session: AsyncSession, scoped: Select[Any], dialect: str
) -> tuple[float | None, float | None]:
    answered = scoped.where(IS_ANSWER, Message.latency_ms.is_not(None))
    if dialect == "postgresql":
        p50, p95 = (
            await session.execute(
                answered.add_columns(
                    func.percentile_cont(0.5).within_group(Message.latency_ms),
                    func.percentile_cont(0.95).within_group(Message.latency_ms),
                )
            )
        ).one()
        return (float(p50) if p50 is not None else None, float(p95) if p95 is not None else None)
    latencies = list((await session.scalars(answered.add_columns(Message.latency_ms))).all())
    if len(latencies) < 2:
        only = float(latencies[0]) if latencies else None
        return only, only
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[94]


def _source_elements(dialect: str, name: str) -> tuple[Any, Any, Any, Any]:
    """A message's sources as rows (`json_each` / `jsonb_array_elements`), with each one's
    file name, file id and whether the answer cited it."""
    if dialect == "postgresql":
        source = func.jsonb_array_elements(Message.sources).table_valued("value").alias(name)
        value: Any = source.c.value
        return (
            source,
            value.op("->>")("file_name"),
            value.op("->>")("file_id"),
            (value.op("->>")("cited") == "true"),
        )
    source = func.json_each(Message.sources).table_valued("value").alias(name)
    value = source.c.value
    return (
        source,
        func.json_extract(value, "$.file_name"),
        func.json_extract(value, "$.file_id"),
        func.json_extract(value, "$.cited") == 1,
    )


def _cites_a_source(dialect: str) -> Any:
    """Whether an answer cited any of the sources it was given: one that cites none said
    "not found" (or answered from nothing), however many chunks retrieval returned."""
    source, _, _, cited = _source_elements(dialect, "cited_source")
    return exists(select(1).select_from(source).where(cited))


async def _top_cited_files(
    session: AsyncSession, scoped: Select[Any], dialect: str, clearance: Clearance
) -> list[tuple[str, int]]:
    """Files most often cited by answers (a file cited twice in one answer counts once),
    among those the reviewer may read: the name of a file is information too."""
    source, name, file_id, cited = _source_elements(dialect, "source")
    per_answer = (
        scoped.join(source, true())
        .add_columns(
            Message.id.label("message_id"), file_id.label("file_id"), name.label("file_name")
        )
        .where(IS_ANSWER, cited)
        .distinct()
        .subquery()
    )
    # A few more than shown, as some may be left out as unreadable.
    rows = (
        await session.execute(
            select(per_answer.c.file_id, per_answer.c.file_name, func.count())
            .group_by(per_answer.c.file_id, per_answer.c.file_name)
            .order_by(func.count().desc(), per_answer.c.file_name)
            .limit(TOP * 5)
        )
    ).all()
    facts = await file_facts(session, {str(found) for found, _, _ in rows})
    readable = [
        (str(file_name), count)
        for found, file_name, count in rows
        if clearance.refusal_note(facts.get(str(found))) is None
    ]
    return readable[:TOP]


async def _unanswered_examples(
    session: AsyncSession, unanswered: Select[Any]
) -> list[tuple[datetime, str, str]]:
    """The latest answers that found nothing, with the question asked just before."""
    rows = await session.execute(
        unanswered.add_columns(Message.created_at, User.email, question_before_answer())
        .order_by(Message.created_at.desc())
        .limit(TOP)
    )
    return [(when, email, text or "") for when, email, text in rows.all()]
