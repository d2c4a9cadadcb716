"""Chainlit's data layer over our tables, on SQLite and PostgreSQL with real engines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import unquote

import pytest
from chainlit.context import ChainlitContext, context_var
from chainlit.session import HTTPSession, WebsocketSession
from chainlit.step import StepDict
from chainlit.types import Feedback as ChainlitFeedback
from chainlit.types import Pagination, ThreadFilter
from chainlit.user import PersistedUser
from chainlit.user import User as ChainlitUser
from literalai.observability.step import StepType
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot import users
from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.models import Chat, Feedback, File, Message
from copilot.db.seed import seed_defaults
from copilot.settings import Settings
from copilot.web.data_layer import CopilotDataLayer

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(database_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    migrate.upgrade(database_settings)
    engine = create_engine(database_settings)
    factory = session_factory(engine)
    async with factory() as session:
        await seed_defaults(session)
        for email, department in (("alice@example.com", "ENG"), ("bob@example.com", None)):
            await users.create_user(
                session,
                email,
                display_name=email.split("@")[0].title(),
                password=None,
                role="Regular User",
                department=department,
            )
    yield factory
    await engine.dispose()


@pytest.fixture
def layer(sessions: async_sessionmaker[AsyncSession]) -> CopilotDataLayer:
    return CopilotDataLayer(sessions, file_url_template="/files/{file_id}")


async def _user(layer: CopilotDataLayer, email: str) -> PersistedUser:
    user = await layer.get_user(email)
    assert user is not None
    return user


def _step(
    thread_id: str, step_type: StepType, output: str, at: datetime, step_id: str | None = None
) -> StepDict:
    return StepDict(
        id=step_id or str(uuid.uuid4()),
        threadId=thread_id,
        type=step_type,
        name="x",
        output=output,
        input="",
        createdAt=at.isoformat().replace("+00:00", "Z"),
        metadata={},
    )


async def _new_thread(
    layer: CopilotDataLayer, owner: PersistedUser, name: str, question: str = "hello"
) -> str:
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name=name, user_id=owner.id)
    await layer.create_step(_step(thread_id, "user_message", question, datetime.now(UTC)))
    return thread_id


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


# --- Users ----------------------------------------------------------------------------------


async def test_users_are_found_by_email_and_never_created(layer: CopilotDataLayer) -> None:
    alice = await _user(layer, "Alice@Example.com")
    assert alice.identifier == "alice@example.com"
    assert uuid.UUID(alice.id) and datetime.fromisoformat(alice.createdAt).tzinfo is not None
    assert alice.metadata == {"department": "ENG", "roles": ["Regular User"], "may_review": False}
    assert (await _user(layer, "bob@example.com")).metadata["department"] is None

    assert await layer.create_user(ChainlitUser(identifier="alice@example.com")) == alice
    assert await layer.create_user(ChainlitUser(identifier="eve@example.com")) is None
    assert await layer.get_user("eve@example.com") is None
    assert await layer.get_user("not an email") is None


async def test_deactivated_user_is_not_persisted_user(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        await users.deactivate(session, "bob@example.com")
    assert await layer.get_user("bob@example.com") is None


# --- A whole thread ----------------------------------------------------------------------


async def test_thread_with_steps_feedback_and_source_elements(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = str(uuid.uuid4())
    await layer.update_thread(
        thread_id, name="Leave policy", user_id=alice.id, metadata={"chat_profile": "default"}
    )
    question = _step(thread_id, "user_message", "How many leave days?", T0)
    answer = _step(thread_id, "assistant_message", "25 days [1][2].", T0 + timedelta(seconds=2))
    await layer.create_step(question)
    await layer.create_step(answer)

    # The answer code stores sources, model and counts on the same message, directly.
    async with sessions() as session:
        pdf = File(
            owner_id=uuid.UUID(alice.id),
            original_name="handbook.pdf",
            mime_type="application/pdf",
            size_bytes=10,
            sha256="a" * 64,
        )
        session.add(pdf)
        await session.flush()
        message = await session.get_one(Message, uuid.UUID(answer["id"]))
        message.sources = [
            {"number": 1, "cited": True, "file_id": str(pdf.id), "file_name": "handbook.pdf",
             "page": 12, "snippet": "Employees get 25 days."},
            {"number": 2, "cited": True, "file_id": str(uuid.uuid4()), "file_name": "faq.md",
             "page": None, "snippet": "Leave: 25 days & more"},
            {"number": 3, "cited": False, "file_id": str(uuid.uuid4()), "file_name": "notes.md",
             "page": None, "snippet": "retrieved but not cited"},
        ]  # fmt: skip
        message.model = "extractive"
        message.latency_ms = 120
        await session.commit()
        pdf_id = pdf.id

    # Chainlit's final update of the streamed message: empty output, no sources.
    await layer.update_step({**answer, "output": "", "metadata": {}})
    feedback_id = await layer.upsert_feedback(
        ChainlitFeedback(forId=answer["id"], value=1, threadId=thread_id)
    )

    thread = await layer.get_thread(thread_id)
    assert thread is not None
    assert (thread["id"], thread["name"]) == (thread_id, "Leave policy")
    assert (thread["userId"], thread["userIdentifier"]) == (alice.id, "alice@example.com")
    assert thread["metadata"] == {"chat_profile": "default"}

    steps = thread["steps"]
    assert [(s["id"], s["type"], s["output"]) for s in steps] == [
        (question["id"], "user_message", "How many leave days?"),
        (answer["id"], "assistant_message", "25 days [1][2]."),
    ]
    assert steps[0]["createdAt"] == "2026-03-01T09:00:00.000000Z"
    assert "feedback" not in steps[0]
    assert steps[1]["feedback"] == {
        "id": feedback_id, "forId": answer["id"], "value": 1, "comment": None
    }  # fmt: skip
    assert steps[1]["metadata"]["model"] == "extractive"
    assert steps[1]["metadata"]["latency_ms"] == 120
    assert [s["file_name"] for s in steps[1]["metadata"]["sources"]] == [
        "handbook.pdf", "faq.md", "notes.md"
    ]  # fmt: skip

    # Each cited source is a chip and a "[n]" link (copilot.web.sources), none in the side
    # panel (Chainlit would open it by itself); the uncited source is not shown.
    elements = thread["elements"] or []
    assert [(e["type"], e["name"], e["display"]) for e in elements] == [
        ("custom", "CitedSource", "inline"), ("text", "[1]", "page"),
        ("custom", "CitedSource", "inline"), ("text", "[2]", "page"),
    ]  # fmt: skip
    assert all(e["forId"] == answer["id"] and e["threadId"] == thread_id for e in elements)
    pdf_chip, _, text_chip, text_link = elements
    pdf_props, text_props = pdf_chip["props"] or {}, text_chip["props"] or {}
    assert pdf_props["label"] == "[1] handbook.pdf, page 12"
    assert (pdf_props["pdf"], pdf_props["page"]) == (f"/files/{pdf_id}", 12)
    assert pdf_props["snippet"] == "Employees get 25 days."
    # A source whose file is gone: no link to it, the snippet is shown.
    assert text_props["label"] == "[2] faq.md" and text_props["pdf"] is None
    url = text_link["url"] or ""
    assert unquote(url.removeprefix("data:text/plain;charset=utf-8,")) == "Leave: 25 days & more"

    # Elements have stable ids, so Chainlit can fetch one again.
    assert await layer.get_element(thread_id, pdf_chip["id"]) == pdf_chip
    assert await layer.get_element(thread_id, text_link["id"]) == text_link
    assert await layer.get_element(thread_id, str(uuid.uuid4())) is None


async def test_upsert_keeps_what_the_answer_code_wrote(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q")
    answer_id = uuid.uuid4()
    async with sessions() as session:  # the answer code got there first
        session.add(
            Message(
                id=answer_id,
                chat_id=uuid.UUID(thread_id),
                role="assistant",
                content="Full answer",
                sources=[{"number": 1, "snippet": "s"}],
                prompt_tokens=10,
            )
        )
        await session.commit()
    step = _step(thread_id, "assistant_message", "", T0, step_id=str(answer_id))
    await layer.create_step({**step, "metadata": {"sources": []}})
    async with sessions() as session:
        message = await session.get_one(Message, answer_id)
        assert (message.content, message.prompt_tokens) == ("Full answer", 10)
        assert message.sources == [{"number": 1, "snippet": "s"}]
        assert message.created_at == T0  # Chainlit's createdAt orders the conversation

    await layer.update_step({**step, "output": "Edited"})
    async with sessions() as session:
        assert (await session.get_one(Message, answer_id)).content == "Edited"

    await layer.delete_step(str(answer_id))
    thread = await layer.get_thread(thread_id)
    assert thread is not None and [s["type"] for s in thread["steps"]] == ["user_message"]


async def test_only_user_and_assistant_messages_are_stored(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q")
    for step_type in ("run", "tool", "llm", "retrieval", "undefined", "system_message"):
        await layer.create_step(_step(thread_id, step_type, "internal", T0))
        await layer.update_step(_step(thread_id, step_type, "internal", T0))
    await layer.create_step(_step("not-a-uuid", "user_message", "x", T0))
    await layer.delete_step(str(uuid.uuid4()))  # unknown or non-message step: nothing to do

    assert await _count(sessions, Message) == 1
    thread = await layer.get_thread(thread_id)
    assert thread is not None and [s["output"] for s in thread["steps"]] == ["hello"]


async def test_step_before_thread_creates_chat_for_the_session_user(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    orphan = str(uuid.uuid4())
    await layer.create_step(_step(orphan, "user_message", "no owner known", T0))
    assert await layer.get_thread(orphan) is None  # no Chainlit session: nobody to own it

    thread_id = str(uuid.uuid4())
    http_session = HTTPSession(id="s", client_type="webapp", thread_id=thread_id, user=alice)
    token = context_var.set(ChainlitContext(http_session))
    try:
        await layer.create_step(_step(thread_id, "user_message", "first words", T0))
    finally:
        context_var.reset(token)
    assert await layer.get_thread_author(thread_id) == "alice@example.com"
    await layer.update_thread(thread_id, name="Named later", user_id=alice.id)
    thread = await layer.get_thread(thread_id)
    assert thread is not None and thread["name"] == "Named later"
    assert [s["output"] for s in thread["steps"]] == ["first words"]


async def test_steps_wait_for_the_first_user_message_in_a_browser_session(
    layer: CopilotDataLayer,
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = str(uuid.uuid4())
    browser = WebsocketSession(
        id=str(uuid.uuid4()),
        socket_id=str(uuid.uuid4()),
        emit=lambda *_: None,
        emit_call=lambda *_: None,
        user_env={},
        client_type="webapp",
        thread_id=thread_id,
        user=alice,
    )
    token = context_var.set(ChainlitContext(browser))
    try:
        greeting = _step(thread_id, "assistant_message", "Hello Alice", T0)
        await layer.create_step(greeting)
        assert await layer.get_thread(thread_id) is None  # queued: no empty chat yet

        # What Chainlit does on the first user message: name the thread, replay the queue.
        browser.has_first_interaction = True
        await layer.update_thread(thread_id, name="First question", user_id=alice.id)
        await browser.flush_method_queue()
    finally:
        context_var.reset(token)
        await browser.delete()
    thread = await layer.get_thread(thread_id)
    assert thread is not None and [s["output"] for s in thread["steps"]] == ["Hello Alice"]


async def test_concurrent_writers_of_one_chat_and_message(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = str(uuid.uuid4())
    step = _step(thread_id, "user_message", "race", T0)
    http_session = HTTPSession(id="s", client_type="webapp", thread_id=thread_id, user=alice)
    token = context_var.set(ChainlitContext(http_session))
    try:
        await asyncio.gather(
            layer.update_thread(thread_id, name="Race", user_id=alice.id),
            layer.create_step(step),
            layer.update_step(step),
        )
    finally:
        context_var.reset(token)
    assert (await _count(sessions, Chat), await _count(sessions, Message)) == (1, 1)
    thread = await layer.get_thread(thread_id)
    assert thread is not None and thread["name"] == "Race"


# --- Listing, ownership, rename, delete --------------------------------------------------


async def test_list_threads_is_own_newest_first_and_searchable(layer: CopilotDataLayer) -> None:
    alice = await _user(layer, "alice@example.com")
    bob = await _user(layer, "bob@example.com")
    budget = await _new_thread(layer, alice, "Budget 2026", "What is the travel budget?")
    vpn = await _new_thread(layer, alice, "VPN setup", "How do I install the 100% VPN client?")
    leave = await _new_thread(layer, alice, "Leave", "Parental LEAVE rules")
    bobs = await _new_thread(layer, bob, "Budget of Bob", "budget")

    async def listed(owner: PersistedUser, search: str | None = None) -> list[str]:
        page = await layer.list_threads(
            Pagination(first=20), ThreadFilter(userId=owner.id, search=search)
        )
        return [thread["id"] for thread in page.data]

    assert await listed(alice) == [leave, vpn, budget]
    assert await listed(bob) == [bobs]
    assert await listed(alice, "budget") == [budget]  # by title, not Bob's chat
    assert await listed(alice, "parental leave") == [leave]  # by content, any case
    assert await listed(alice, "install the") == [vpn]
    assert await listed(alice, "100%") == [vpn]  # % is a character, not a wildcard
    assert await listed(alice, "_") == []
    assert await listed(alice, "nothing like this") == []

    # A new message is activity: the chat moves to the top; session metadata is not.
    await layer.create_step(_step(budget, "user_message", "and hotels?", datetime.now(UTC)))
    await layer.update_thread(vpn, metadata={"chat_settings": {"k": 4}})
    assert await listed(alice) == [budget, leave, vpn]
    vpn_thread = await layer.get_thread(vpn)
    assert vpn_thread is not None and vpn_thread["metadata"] == {"chat_settings": {"k": 4}}

    with pytest.raises(ValueError):
        await layer.list_threads(Pagination(first=5), ThreadFilter())


async def test_pagination_with_cursor(layer: CopilotDataLayer) -> None:
    alice = await _user(layer, "alice@example.com")
    created = [await _new_thread(layer, alice, f"Chat {n}") for n in range(5)]
    newest_first = created[::-1]
    owner_filter = ThreadFilter(userId=alice.id)

    seen: list[str] = []
    cursor: str | None = None
    pages = []
    while True:
        page = await layer.list_threads(Pagination(first=2, cursor=cursor), owner_filter)
        pages.append([t["id"] for t in page.data])
        assert page.pageInfo.startCursor == (page.data[0]["id"] if page.data else None)
        assert page.pageInfo.endCursor == (page.data[-1]["id"] if page.data else None)
        seen += pages[-1]
        if not page.pageInfo.hasNextPage:
            break
        cursor = page.pageInfo.endCursor
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert seen == newest_first

    unknown_cursor = Pagination(first=2, cursor=str(uuid.uuid4()))
    page = await layer.list_threads(unknown_cursor, owner_filter)
    assert [t["id"] for t in page.data] == newest_first[:2] and page.pageInfo.hasNextPage


async def test_feedback_filter(layer: CopilotDataLayer) -> None:
    alice = await _user(layer, "alice@example.com")
    liked = await _new_thread(layer, alice, "Liked")
    disliked = await _new_thread(layer, alice, "Disliked")
    await _new_thread(layer, alice, "No feedback")
    ratings: list[tuple[str, Literal[0, 1]]] = [(liked, 1), (disliked, 0)]
    for thread_id, value in ratings:
        answer = _step(thread_id, "assistant_message", "answer", datetime.now(UTC))
        await layer.create_step(answer)
        await layer.upsert_feedback(ChainlitFeedback(forId=answer["id"], value=value))

    async def listed(value: Literal[0, 1]) -> list[str]:
        filters = ThreadFilter(userId=alice.id, feedback=value)
        return [t["id"] for t in (await layer.list_threads(Pagination(first=9), filters)).data]

    assert await listed(1) == [liked]
    assert await listed(0) == [disliked]


async def test_owner_rename_and_soft_delete(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    bob = await _user(layer, "bob@example.com")
    thread_id = await _new_thread(layer, alice, "Alice's secret")

    assert await layer.get_thread_author(thread_id) == "alice@example.com"
    assert await layer.get_thread_author(str(uuid.uuid4())) == ""
    assert await layer.get_thread_author("not-a-uuid") == ""
    bobs_page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=bob.id))
    assert thread_id not in [t["id"] for t in bobs_page.data]

    # Chainlit passing Bob as user_id for Alice's chat never hands it over.
    await layer.update_thread(thread_id, name="  Renamed\n chat ", user_id=bob.id)
    thread = await layer.get_thread(thread_id)
    assert thread is not None and thread["name"] == "Renamed chat"
    assert thread["userIdentifier"] == "alice@example.com"
    await layer.update_thread(thread_id, name="x" * 400)
    thread = await layer.get_thread(thread_id)
    assert thread is not None and thread["name"] == "x" * 255

    await layer.delete_thread(thread_id)
    assert await layer.get_thread(thread_id) is None
    assert await layer.get_thread_author(thread_id) == ""
    alices_page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=alice.id))
    assert alices_page.data == []
    # Still there for audit, and Chainlit's later writes don't bring it back.
    await layer.update_thread(thread_id, name="Back?", user_id=alice.id)
    await layer.create_step(_step(thread_id, "user_message", "late", datetime.now(UTC)))
    assert await layer.get_thread(thread_id) is None
    async with sessions() as session:
        chat = await session.get_one(Chat, uuid.UUID(thread_id))
        assert chat.deleted_at is not None and chat.title == "x" * 255
    assert await _count(sessions, Message) == 1

    # A thread Chainlit mentions without a known owner is not created.
    await layer.update_thread(str(uuid.uuid4()), name="Nobody's", metadata={"a": 1})
    await layer.update_thread(str(uuid.uuid4()), name="Unknown", user_id=str(uuid.uuid4()))
    assert await _count(sessions, Chat) == 1


async def test_a_chat_started_by_an_upload_or_a_command_is_named_once(
    layer: CopilotDataLayer,
) -> None:
    alice = await _user(layer, "alice@example.com")
    bob = await _user(layer, "bob@example.com")

    async def name_of(thread_id: str) -> str:
        thread = await layer.get_thread(thread_id)
        assert thread is not None
        return str(thread["name"])

    # Chainlit first (its name is the empty text of an upload), then the chat names it.
    uploaded = str(uuid.uuid4())
    await layer.update_thread(uploaded, name="", user_id=alice.id)
    assert await name_of(uploaded) == "New chat"
    await layer.name_new_chat(uploaded, "report.pdf", alice.id)
    assert await name_of(uploaded) == "report.pdf"
    # The chat first; Chainlit's later "/files" (a command) names no chat.
    command = str(uuid.uuid4())
    await layer.name_new_chat(command, "My files", alice.id)
    await layer.update_thread(command, name="/files", user_id=alice.id)
    assert await name_of(command) == "My files"
    # A chat with a name keeps it; someone else's chat is never named.
    await layer.name_new_chat(uploaded, "later.pdf", alice.id)
    fresh = await _new_thread(layer, alice, "New chat")
    await layer.name_new_chat(fresh, "Bob was here", bob.id)
    assert (await name_of(uploaded), await name_of(fresh)) == ("report.pdf", "New chat")
    await layer.name_new_chat(str(uuid.uuid4()), "No owner", str(uuid.uuid4()))


# --- Feedback -----------------------------------------------------------------------------


async def test_feedback_upsert_updates_one_row(
    layer: CopilotDataLayer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q")
    answer = _step(thread_id, "assistant_message", "A", datetime.now(UTC))
    await layer.create_step(answer)

    first = await layer.upsert_feedback(ChainlitFeedback(forId=answer["id"], value=1))
    second = await layer.upsert_feedback(
        ChainlitFeedback(forId=answer["id"], value=0, id=first, comment="Wrong year")
    )
    assert first == second
    async with sessions() as session:
        rows = (await session.scalars(select(Feedback))).all()
        assert [(str(r.id), r.value, r.comment, str(r.user_id)) for r in rows] == [
            (first, -1, "Wrong year", alice.id)
        ]
    thread = await layer.get_thread(thread_id)
    assert thread is not None
    assert thread["steps"][1]["feedback"] == {
        "id": first, "forId": answer["id"], "value": 0, "comment": "Wrong year"
    }  # fmt: skip

    with pytest.raises(ValueError):
        await layer.upsert_feedback(ChainlitFeedback(forId=str(uuid.uuid4()), value=1))
    assert await layer.delete_feedback(first) is True
    assert await layer.delete_feedback(first) is False
    assert await layer.delete_feedback("nope") is False
    assert await _count(sessions, Feedback) == 0


# --- The rest of the interface --------------------------------------------------------------


async def test_remaining_interface(layer: CopilotDataLayer) -> None:
    alice = await _user(layer, "alice@example.com")
    thread_id = await _new_thread(layer, alice, "Q")
    assert await layer.build_debug_url() == ""
    assert await layer.get_favorite_steps(alice.id) == []
    step = _step(thread_id, "user_message", "hello", T0)
    assert await layer.set_step_favorite(step, True) == step
    assert await layer.get_element(thread_id, "anything") is None
    await layer.delete_element("anything", thread_id)
    await layer.close()
