"""The data layer's own walls (issue 9), under the HTTP guard: feedback by the owner only,
steps and answers never written into someone else's or a deleted chat, soft-deleted edits,
no client sources, no NUL, and a chat read by anyone but its owner only once shared.
SQLite and PostgreSQL, real engines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from chainlit.context import ChainlitContext, context_var
from chainlit.session import HTTPSession
from chainlit.types import Feedback as ChainlitFeedback
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db.models import Feedback, Message
from copilot.web.data_layer import CopilotDataLayer, NotYours, request_user
from tests.web.test_data_layer import T0, _new_thread, _step, _user, layer, sessions

__all__ = ["layer", "sessions"]


async def test_feedback_by_another_user_is_refused(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q")
    answer = _step(thread_id, "assistant_message", "A", datetime.now(UTC))
    await layer.create_step(answer)
    as_alice = request_user.set("alice@example.com")
    try:
        feedback_id = await layer.upsert_feedback(
            ChainlitFeedback(forId=answer["id"], value=1, comment="good")
        )
    finally:
        request_user.reset(as_alice)

    as_bob = request_user.set("bob@example.com")
    try:
        with pytest.raises(NotYours):
            await layer.upsert_feedback(ChainlitFeedback(forId=answer["id"], value=0))
        with pytest.raises(NotYours):
            await layer.delete_feedback(feedback_id)
    finally:
        request_user.reset(as_bob)
    async with sessions() as session:
        rows = (await session.scalars(select(Feedback))).all()
    assert [(str(r.id), r.value, r.comment) for r in rows] == [(feedback_id, 1, "good")]


async def test_no_writes_into_another_users_or_a_deleted_chat(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    bob = await _user(layer, "bob@example.com")
    thread_id = await _new_thread(layer, alice, "Q", question="alice asks")
    as_bob = context_var.set(
        ChainlitContext(HTTPSession(id="s", client_type="webapp", thread_id=thread_id, user=bob))
    )
    try:
        await layer.create_step(_step(thread_id, "user_message", "bob writes", T0))
    finally:
        context_var.reset(as_bob)
    await layer.record_answer(
        message_id=str(uuid.uuid4()), chat_id=thread_id, owner_id=bob.id, content="bob's answer",
        sources=[], model="m",
    )  # fmt: skip
    await layer.delete_thread(thread_id)
    await layer.record_answer(
        message_id=str(uuid.uuid4()), chat_id=thread_id, owner_id=alice.id, content="late",
        sources=[], model="m",
    )  # fmt: skip
    in_chat = select(Message.content).where(Message.chat_id == uuid.UUID(thread_id))
    async with sessions() as session:
        contents = (await session.scalars(in_chat)).all()
    assert list(contents) == ["alice asks"]
    assert await layer.chat_owner(thread_id) == ("alice@example.com", True)


async def test_removed_steps_are_kept_and_edits_keep_the_earlier_text(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name="Q", user_id=alice.id)
    question = _step(thread_id, "user_message", "first text", T0)
    answer = _step(thread_id, "assistant_message", "first answer", T0)
    await layer.create_step(question)
    await layer.create_step(answer)
    await layer.update_step({**question, "output": "second text"})
    await layer.delete_step(answer["id"])

    thread = await layer.get_thread(thread_id)
    assert thread is not None and [s["output"] for s in thread["steps"]] == ["second text"]
    async with sessions() as session:
        rows = {
            m.content: m
            for m in await session.scalars(
                select(Message).where(Message.chat_id == uuid.UUID(thread_id))
            )
        }
    assert set(rows) == {"first text", "second text", "first answer"}
    assert rows["first answer"].deleted_at is not None
    assert rows["first text"].deleted_at is not None
    assert str(rows["first text"].superseded_by) == question["id"]
    assert rows["second text"].deleted_at is None and rows["second text"].superseded_by is None


async def test_client_sources_and_nul_are_not_stored(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name="Q\x00uestion", user_id=alice.id)
    forged = [{"file_id": str(uuid.uuid4()), "file_name": "x.pdf", "snippet": "s", "cited": True}]
    for step_type in ("user_message", "assistant_message"):
        step = _step(thread_id, step_type, "te\x00xt", T0)  # type: ignore[arg-type]
        step["metadata"] = {"sources": forged}
        await layer.create_step(step)
    thread = await layer.get_thread(thread_id)
    assert thread is not None
    assert thread["name"] == "Question" and thread["elements"] == []
    async with sessions() as session:
        stored = (await session.scalars(select(Message))).all()
    assert [(m.content, m.sources) for m in stored] == [("text", []), ("text", [])]


async def test_a_chat_is_read_by_anyone_else_only_once_shared_and_then_read_only(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q", question="Where is the office?")
    run_id = str(uuid.uuid4())
    answer = str(uuid.uuid4())
    await layer.record_answer(
        message_id=answer,
        chat_id=thread_id,
        owner_id=alice.id,
        content="On the river.",
        sources=[],
        model="m",
        run_id=run_id,
    )
    notice = _step(thread_id, "assistant_message", "Your files: heron.md", datetime.now(UTC))
    await layer.create_step(notice)  # a notice: no run, names the owner's files
    as_alice = request_user.set("alice@example.com")
    try:
        await layer.upsert_feedback(ChainlitFeedback(forId=run_id, value=1, comment="ok"))
        own = await layer.get_thread(thread_id)
    finally:
        request_user.reset(as_alice)
    assert own is not None and [(s["type"], s["parentId"]) for s in own["steps"]] == [
        ("user_message", None),
        ("run", own["steps"][0]["id"]),
        ("assistant_message", run_id),
        ("assistant_message", own["steps"][0]["id"]),  # the notice, under its question
    ]

    as_bob = request_user.set("bob@example.com")
    try:
        unshared = await layer.get_thread(thread_id)
        element = await layer.get_element(thread_id, str(uuid.uuid4()))
        await layer.update_thread(thread_id, metadata={"is_shared": True, "shared_at": "now"})
        not_by_bob = await layer.get_thread(thread_id)
    finally:
        request_user.reset(as_bob)
    assert unshared is None and element is None and not_by_bob is None  # only alice shares

    as_alice = request_user.set("alice@example.com")
    try:
        await layer.update_thread(thread_id, metadata={"is_shared": True, "shared_at": "now"})
    finally:
        request_user.reset(as_alice)
    as_bob = request_user.set("bob@example.com")
    try:
        shared = await layer.get_thread(thread_id)
    finally:
        request_user.reset(as_bob)
    assert shared is not None and shared["metadata"]["is_shared"] is True
    # Read-only: no runs (so no thumbs or copy buttons) and not the owner's rating.
    assert [(s["type"], s["output"]) for s in shared["steps"]] == [
        ("user_message", "Where is the office?"),
        ("assistant_message", "On the river."),
    ]
    assert all("feedback" not in s for s in shared["steps"])
