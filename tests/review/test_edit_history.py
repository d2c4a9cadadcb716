"""An edited question in review: the transcript keeps and labels what the edit replaced,
the removed answer is paired with the question's earlier text, analytics counts the
question once and the export says which rows the edit removed."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, timedelta

from sqlalchemy import select

from copilot.db.models import Chat, Message
from copilot.review import analytics, export
from copilot.review.clearance import Clearance
from copilot.review.conversations import ConversationFilter
from copilot.review.reach import Reach
from copilot.review.transcripts import load_transcript, question_before_answer
from tests.review.conftest import Reviewed
from tests.review.dataset import DAY


async def _edited_chat(reviewed: Reviewed) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """alice asked, got an answer, then edited her question and got a new answer."""
    alice = reviewed.data.alice
    asked, edited = DAY + timedelta(days=3), DAY + timedelta(days=3, minutes=5)
    ids = {name: uuid.uuid4() for name in ("earlier", "question", "removed", "answer")}
    async with reviewed.sessions() as session:
        chat = Chat(user_id=uuid.UUID(alice.user_id), title="Edited", created_at=asked)
        session.add(chat)
        await session.flush()
        session.add_all(
            [
                # The row the edit kept: the question's first text, removed at the edit.
                Message(
                    id=ids["earlier"],
                    chat_id=chat.id,
                    role="user",
                    content="Parking fees?",
                    created_at=asked,
                    deleted_at=edited,
                    superseded_by=ids["question"],
                ),
                Message(
                    id=ids["question"],
                    chat_id=chat.id,
                    role="user",
                    content="Parking fees in Berlin?",
                    created_at=asked,
                ),
                Message(
                    id=ids["removed"],
                    chat_id=chat.id,
                    role="assistant",
                    model="extractive",
                    content="Parking is free.",
                    created_at=asked + timedelta(seconds=5),
                    deleted_at=edited,
                ),
                Message(
                    id=ids["answer"],
                    chat_id=chat.id,
                    role="assistant",
                    model="extractive",
                    content="Berlin parking costs 5 euros.",
                    created_at=edited + timedelta(seconds=5),
                ),
            ]
        )
        await session.commit()
        return chat.id, ids


def _clearance(reviewed: Reviewed) -> Clearance:
    reach = Reach.of(reviewed.data.super_admin)
    assert reach is not None
    return Clearance(reviewed.data.super_admin, reach, personal_files=False)


async def test_the_transcript_keeps_and_labels_what_an_edit_replaced(reviewed: Reviewed) -> None:
    chat_id, ids = await _edited_chat(reviewed)
    async with reviewed.sessions() as session:
        transcript = await load_transcript(session, _clearance(reviewed), chat_id)
    assert transcript is not None
    shown = [(m.id, m.removed_at is not None, m.superseded_by) for m in transcript.messages]
    assert shown == [
        (ids["earlier"], True, ids["question"]),
        (ids["question"], False, None),
        (ids["removed"], True, None),
        (ids["answer"], False, None),
    ]


async def test_each_answer_is_paired_with_the_text_it_answered(reviewed: Reviewed) -> None:
    _, ids = await _edited_chat(reviewed)
    async with reviewed.sessions() as session:
        rows = dict(
            (
                await session.execute(
                    select(Message.id, question_before_answer()).where(
                        Message.id.in_([ids["removed"], ids["answer"]])
                    )
                )
            ).all()
        )
    assert rows == {ids["removed"]: "Parking fees?", ids["answer"]: "Parking fees in Berlin?"}


async def test_an_edited_question_counts_once(reviewed: Reviewed) -> None:
    day = (DAY + timedelta(days=3)).date()
    async with reviewed.sessions() as session:
        before = await analytics.usage(session, _clearance(reviewed), day, day)
    await _edited_chat(reviewed)
    async with reviewed.sessions() as session:
        after = await analytics.usage(session, _clearance(reviewed), day, day)
    assert after.questions - before.questions == 1


async def test_the_export_marks_removed_rows(reviewed: Reviewed) -> None:
    chat_id, ids = await _edited_chat(reviewed)
    reach = Reach.of(reviewed.data.super_admin)
    assert reach is not None
    criteria = ConversationFilter(start=date(2026, 11, 5), end=date(2026, 11, 5))
    async with reviewed.sessions() as session:
        text = "".join(
            [
                part
                async for part in export.export_text(session, _clearance(reviewed), criteria, "csv")
            ]
        )
    rows = {row["message_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows[str(ids["removed"])]["removed_at"].startswith("2026-11-05T09:05")
    assert rows[str(ids["answer"])]["removed_at"] == ""
