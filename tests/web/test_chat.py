"""The chat end to end: the real app served on a port, driven over HTTP and socket.io as the
browser drives it (copilot.bench.chat_client), on SQLite and on PostgreSQL.

One app per database for the whole module (Chainlit is a process-wide singleton and the
embedding model is slow to load); every test makes its own users and threads. Answers come
from LangChain's GenericFakeChatModel (tests only), so they are exact, or from the real
extractive answerer where citations of an upload are the point.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import socketio.exceptions
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import Field
from sqlalchemy import select

from copilot import users
from copilot.answer.chain import AnswerChain
from copilot.answer.extractive import NOT_FOUND_TEXT, ExtractiveAnswerer
from copilot.bench.chat_client import (
    ChatSession,
    Credentials,
    Reply,
    SignInRefused,
    http_client,
    sign_in,
)
from copilot.bench.serving import serving
from copilot.db import migrate
from copilot.db.models import Chat, Feedback, File, Message, QueryLog
from copilot.db.seed import seed_defaults
from copilot.knowledge import knowledge_base
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.settings import Settings
from copilot.state.rate_limits import RateLimiter
from copilot.users import Principal
from copilot.web import runtime as web_runtime
from copilot.web.chat import starters_for
from copilot.web.server import create_app
from tests.accounts import PASSWORD, make_account
from tests.conftest import FIXTURES

T = TypeVar("T")

HANDBOOK = """# Travel policy

Employees book flights through the travel portal. Economy class is the default for flights
under six hours. Hotel costs are reimbursed up to 180 euros per night in Europe.

# Equipment

Every engineer receives a laptop on the first day. Replacement laptops are ordered through
the IT helpdesk and arrive within five working days.
"""
HOTEL_QUESTION = "How much are hotel costs reimbursed per night?"
HOTEL_ANSWER = "Hotels are reimbursed up to 180 euros per night in Europe [1]."
# What the chat shows and stores: the streamed answer (its sources are elements).
HOTEL_REPLY = HOTEL_ANSWER
# Only in one user's personal upload: nobody else may ever be answered from it.
SECRET_NOTE = """# Project Heron

The codename of the Heron launch partner is Bluefinch Logistics. The Heron launch budget is
412 thousand euros, approved in March.
"""
SECRET_QUESTION = "What is the codename of the Heron launch partner?"


# --- The app ---------------------------------------------------------------------------------


@dataclass
class LiveChat:
    """The running app and what the tests need of it."""

    url: str
    runtime: web_runtime.Runtime
    handbook_id: str

    def answer_with(
        self,
        model: GenericFakeChatModel | None,
        name: str = "fake-chat",
        *,
        alternatives: dict[str, GenericFakeChatModel | None] | None = None,
        reveal_words_per_second: float = 0.0,
    ) -> None:
        """Swap the chain's model; None means the real extractive answerer."""
        kb = self.runtime.kb
        self.runtime._chain = AnswerChain(
            kb.search,
            model=model,
            model_name=name if model is not None else "extractive",
            extractive=ExtractiveAnswerer(kb.embeddings),
            locate=self.runtime.chain.locate,  # as the app wires it (Runtime.start)
            alternatives=alternatives,  # type: ignore[arg-type]
            reveal_words_per_second=reveal_words_per_second,
        )


@dataclass
class Account:
    principal: Principal
    credentials: Credentials

    @property
    def email(self) -> str:
        return self.principal.email


class ScriptedModel(GenericFakeChatModel):
    """GenericFakeChatModel that also remembers the messages it was given on each call."""

    calls: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class BrokenModel(GenericFakeChatModel):
    """A model whose endpoint is down."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("model endpoint unreachable")


def scripted(*answers: str, repeat: bool = False) -> ScriptedModel:
    replies = [AIMessage(a) for a in answers]
    return ScriptedModel(messages=itertools.cycle(replies) if repeat else iter(replies))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embeddings: LocalMiniLM,
) -> AsyncIterator[LiveChat]:
    data_dir = tmp_path_factory.mktemp("chat") / "data"
    database = None
    if request.param == "postgres":
        database = _scratch_postgres(request.getfixturevalue("postgres_server_url"))
    settings = Settings(data_dir=data_dir, database_url=database.url if database else "")
    try:
        migrate.upgrade(settings)
        with pytest.MonkeyPatch.context() as patch:
            # The session's model: loading one per app would cost seconds.
            patch.setattr(knowledge_base, "create_embeddings", lambda _: embeddings)
            app = create_app(settings)
            async with serving(app) as url:
                runtime = web_runtime.current()
                handbook_id = await _company_handbook(runtime, data_dir)
                yield LiveChat(url, runtime, handbook_id)
    finally:
        if database:
            database.drop()


@dataclass
class _ScratchPostgres:
    admin_url: str
    name: str
    url: str

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _scratch_postgres(server_url: str) -> _ScratchPostgres:
    """A fresh database for the module (conftest's postgres_url is per test)."""
    name = f"copilot_chat_{uuid.uuid4().hex[:12]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return _ScratchPostgres(admin, name, f"{base}/{name}")


async def _company_handbook(runtime: web_runtime.Runtime, folder: Path) -> str:
    async with runtime.sessions() as session:
        await seed_defaults(session)
        owner = await users.create_user(
            session,
            "handbook-owner@example.com",
            display_name="Owner",
            password=None,
            role="Super Admin",
            department="ADM",
        )
    path = folder / "handbook.md"
    path.write_text(HANDBOOK)
    result = await ingest_file(runtime.kb, path, Ownership(owner.id, scope="company"))
    assert result.outcome == "indexed", result.summary
    return result.file_id


async def new_account(live: LiveChat, name: str, department: str = "ENG") -> Account:
    """A fresh regular user, signed in through the chat's login form."""
    principal = await make_account(
        live.runtime.sessions, name, role="Regular User", department=department
    )
    return Account(principal, await sign_in(live.url, principal.email, PASSWORD))


# --- Helpers ---------------------------------------------------------------------------------


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Chainlit persists steps in background tasks: poll until the row is there."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value is not None and value != []:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s: {probe}")
        await asyncio.sleep(0.05)


async def stored_message(live: LiveChat, message_id: str, **expected: Any) -> Message:
    """The stored message once it exists and has the expected column values."""

    async def probe() -> Message | None:
        async with live.runtime.sessions() as session:
            message = await session.get(Message, uuid.UUID(message_id))
        if message is None or any(getattr(message, k) != v for k, v in expected.items()):
            return None
        return message

    return await eventually(probe)


async def chat_messages(live: LiveChat, thread_id: str) -> list[Message]:
    async with live.runtime.sessions() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.chat_id == uuid.UUID(thread_id))
            .order_by(Message.created_at)
        )
        return list(rows.all())


async def list_threads(live: LiveChat, account: Account) -> list[dict[str, Any]]:
    async with http_client(live.url, account.credentials) as http:
        response = await http.post(
            "/chat/project/threads", json={"pagination": {"first": 50}, "filter": {}}
        )
    response.raise_for_status()
    threads: list[dict[str, Any]] = response.json()["data"]
    return threads


def answer_of(reply: Reply) -> dict[str, Any]:
    assert reply.answer is not None, f"no assistant message in {reply.messages}"
    return reply.answer


# --- Tests -----------------------------------------------------------------------------------


async def test_streamed_answer_is_saved_with_sources_model_and_latency(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    alice = await new_account(live, "alice")
    async with ChatSession(live.url, alice.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None

    # Streamed: stream_start carries the first token alone, the rest follows in frames (at
    # most one per FRAME_SECONDS: this instant model's answer comes as one more frame).
    assert reply.token_count >= 2 and "".join(reply.tokens) == HOTEL_ANSWER
    assert reply.time_to_first_token is not None and reply.time_to_first_token > 0
    answer = answer_of(reply)
    assert reply.text == HOTEL_REPLY and answer["threadId"] == thread_id
    # The cited source is a chip under the answer, named with its place in the file, and
    # the link of its "[1]" (copilot.web.sources).
    assert [(e["name"], e["display"]) for e in reply.elements] == [
        ("CitedSource", "inline"), ("[1]", "page")
    ]  # fmt: skip
    assert reply.elements[0]["props"]["label"] == "[1] handbook.md, Travel policy"
    assert all(e["forId"] == answer["id"] for e in reply.elements)

    stored = await stored_message(live, answer["id"], model="fake-chat")
    assert stored.role == "assistant" and stored.content == HOTEL_REPLY
    assert str(stored.chat_id) == thread_id and stored.error is None
    assert stored.latency_ms is not None and stored.latency_ms > 0
    cited = [s for s in stored.sources if s["cited"]]
    assert len(cited) == 1 and cited[0]["number"] == 1
    assert cited[0]["file_id"] == live.handbook_id and cited[0]["file_name"] == "handbook.md"
    assert uuid.UUID(cited[0]["chunk_id"]) and "page" in cited[0]
    assert cited[0]["location"] == cited[0]["place"] == "Travel policy"
    assert "180 euros" in cited[0]["snippet"]

    question = await stored_message(live, reply.question_id, content=HOTEL_QUESTION)
    assert question.role == "user" and str(question.chat_id) == thread_id
    async with live.runtime.sessions() as session:
        chat_row = await session.get(Chat, uuid.UUID(thread_id))
        logged = (
            await session.scalars(
                select(QueryLog).where(QueryLog.user_id == uuid.UUID(alice.principal.user_id))
            )
        ).all()
    assert chat_row is not None and str(chat_row.user_id) == alice.principal.user_id
    assert chat_row.title == HOTEL_QUESTION
    assert [q.question for q in logged] == [HOTEL_QUESTION] and logged[0].result_count == 1
    # Only the conversation is stored: no run, tool or element rows.
    assert [m.role for m in await chat_messages(live, thread_id)] == ["user", "assistant"]


async def test_resume_shows_history_and_restores_the_chains_memory(live: LiveChat) -> None:
    model = scripted(
        HOTEL_ANSWER,
        "Which class is the default for flights under six hours?",  # the condensed follow-up
        "Economy class is the default for flights under six hours [1].",
    )
    live.answer_with(model)
    bob = await new_account(live, "bob")
    async with ChatSession(live.url, bob.credentials) as chat:
        first = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None
    await stored_message(live, answer_of(first)["id"], model="fake-chat")

    async with ChatSession(live.url, bob.credentials, thread_id=thread_id) as resumed:
        assert resumed.resumed_thread is not None and resumed.resume_error is None
        history = [(s["type"], s["output"]) for s in resumed.resumed_thread["steps"]]
        assert history == [
            ("user_message", HOTEL_QUESTION),
            ("run", ""),  # the answer's run, which gives it its copy and thumbs buttons
            ("assistant_message", HOTEL_REPLY),
        ]
        follow_up = await resumed.ask("And flights?")
    assert follow_up.text.startswith("Economy class")
    assert answer_of(follow_up)["threadId"] == thread_id

    # Three model calls: the first answer, then condensing and answering the follow-up,
    # both given the restored conversation.
    assert len(model.calls) == 3
    for call in model.calls[1:]:
        contents = [m.content for m in call]  # the answer as generated: no sources footer
        assert HOTEL_QUESTION in contents and HOTEL_ANSWER in contents
        assert contents[-1] == "And flights?"
    stored = await eventually(
        lambda: _roles_when(live, thread_id, ["user", "assistant", "user", "assistant"])
    )
    assert stored[2].content == "And flights?" and stored[3].content.startswith("Economy")


async def test_a_page_at_a_chats_address_resumes_it_even_if_its_socket_names_no_chat(
    live: LiveChat,
) -> None:
    """Chainlit's page can keep the socket it opened before it read the chat id from its
    address (a race on busy cores: the reload showed an empty page). The page's address,
    the socket's Referer, still resumes that chat, for its owner only; at /chat a new chat
    starts."""
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    owner = await new_account(live, "olga")
    colleague = await new_account(live, "pete")
    async with ChatSession(live.url, owner.credentials) as chat:
        await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None
    address = f"/chat/thread/{thread_id}"

    async with ChatSession(live.url, owner.credentials, page=address) as reloaded:
        assert reloaded.resumed_thread is not None and reloaded.resume_error is None
        assert reloaded.resumed_thread["id"] == thread_id
        questions = [s["output"] for s in reloaded.resumed_thread["steps"]]
        assert HOTEL_QUESTION in questions
    with pytest.raises(socketio.exceptions.ConnectionError):
        await ChatSession(live.url, colleague.credentials, page=address).connect()
    async with ChatSession(live.url, owner.credentials, page="/chat") as fresh:
        assert fresh.resumed_thread is None
        reply = await fresh.ask(HOTEL_QUESTION)
    assert answer_of(reply)["threadId"] not in (thread_id, None)


async def _roles_when(live: LiveChat, thread_id: str, roles: list[str]) -> list[Message] | None:
    messages = await chat_messages(live, thread_id)
    complete = [m.role for m in messages] == roles and all(m.content for m in messages)
    return messages if complete else None


async def test_threads_are_listed_renamed_and_deleted_over_http(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    carol = await new_account(live, "carol")
    thread_ids = []
    for question in ("First question about hotels?", "Second question about hotels?"):
        async with ChatSession(live.url, carol.credentials) as chat:
            reply = await chat.ask(question)
            assert chat.thread_id is not None
            thread_ids.append(chat.thread_id)
        await stored_message(live, answer_of(reply)["id"], model="fake-chat")
    first, second = thread_ids

    listed = await list_threads(live, carol)
    assert [t["id"] for t in listed] == [second, first]  # most recent first
    assert [t["name"] for t in listed] == [
        "Second question about hotels?",
        "First question about hotels?",
    ]

    async with http_client(live.url, carol.credentials) as http:
        renamed = await http.put(
            "/chat/project/thread", json={"threadId": first, "name": "Hotel limits"}
        )
        assert renamed.status_code == 200
        thread = (await http.get(f"/chat/project/thread/{first}")).json()
        messages = [s for s in thread["steps"] if s["type"].endswith("_message")]
        assert thread["name"] == "Hotel limits" and len(messages) == 2

        deleted = await http.request("DELETE", "/chat/project/thread", json={"threadId": second})
        assert deleted.status_code == 200
        assert (await http.get(f"/chat/project/thread/{second}")).status_code == 404

    assert [(t["id"], t["name"]) for t in await list_threads(live, carol)] == [
        (first, "Hotel limits")
    ]
    async with live.runtime.sessions() as session:
        gone = await session.get(Chat, uuid.UUID(second))
    assert gone is not None and gone.deleted_at is not None  # kept for audit
    assert len(await chat_messages(live, second)) == 2


async def test_feedback_is_stored_updated_and_removed(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    dave = await new_account(live, "dave")
    async with ChatSession(live.url, dave.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        session_id, thread_id = chat.session_id, chat.thread_id
    answer_id = answer_of(reply)["id"]
    await stored_message(live, answer_id, model="fake-chat")

    async def give(value: int, comment: str | None) -> str:
        async with http_client(live.url, dave.credentials) as http:
            response = await http.put(
                "/chat/feedback",
                json={
                    "feedback": {
                        "forId": answer_id,
                        "threadId": thread_id,
                        "value": value,
                        "comment": comment,
                    },
                    "sessionId": session_id,
                },
            )
        assert response.status_code == 200, response.text
        feedback_id: str = response.json()["feedbackId"]
        return feedback_id

    async def stored_feedback() -> list[Feedback]:
        async with live.runtime.sessions() as session:
            rows = await session.scalars(
                select(Feedback).where(Feedback.message_id == uuid.UUID(answer_id))
            )
            return list(rows.all())

    feedback_id = await give(1, "Spot on")
    [row] = await stored_feedback()
    assert (str(row.id), row.value, row.comment) == (feedback_id, 1, "Spot on")
    assert str(row.user_id) == dave.principal.user_id

    assert await give(0, "Outdated figure") == feedback_id  # updated, not added
    [row] = await stored_feedback()
    assert (row.value, row.comment) == (-1, "Outdated figure")
    async with http_client(live.url, dave.credentials) as http:
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
        step = next(s for s in thread["steps"] if s["id"] == answer_id)
        assert step["feedback"]["value"] == 0 and step["feedback"]["comment"] == "Outdated figure"

        removed = await http.request("DELETE", "/chat/feedback", json={"feedbackId": feedback_id})
        assert removed.status_code == 200
    assert await stored_feedback() == []


async def test_rate_limit_refuses_the_third_message_and_keeps_the_question(
    live: LiveChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = live.runtime.settings.model_copy(update={"rate_limit_per_minute": 2})
    monkeypatch.setattr(
        live.runtime, "limiter", RateLimiter.from_settings(live.runtime.redis.client, strict)
    )
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    erin = await new_account(live, "erin")
    async with ChatSession(live.url, erin.credentials) as chat:
        replies = [await chat.ask(f"Hotel question number {n}?") for n in (1, 2, 3)]
    assert [r.text for r in replies[:2]] == [HOTEL_REPLY, HOTEL_REPLY]
    refused = replies[2]
    assert "limit of 2 messages per minute" in refused.text and "saved" in refused.text
    assert refused.tokens == [] and refused.time_to_first_token is None
    question = await stored_message(live, refused.question_id, content="Hotel question number 3?")
    assert question.role == "user"
    refusal = await stored_message(live, answer_of(refused)["id"], content=refused.text)
    assert refusal.model is None and refusal.sources == []


async def test_model_failure_is_shown_and_stored_and_the_question_kept(live: LiveChat) -> None:
    live.answer_with(BrokenModel(messages=iter([])), name="broken-model")
    frank = await new_account(live, "frank")
    async with ChatSession(live.url, frank.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
    # The user gets an error id; the exception is for the log and the admins (issue 9).
    assert "could not answer" in reply.text and "error id " in reply.text
    assert "ConnectionError" not in reply.text and "question is saved" in reply.text
    error_id = reply.text.split("error id ")[1].split(")")[0]
    stored = await stored_message(live, answer_of(reply)["id"], model="broken-model")
    assert stored.error == f"ConnectionError: model endpoint unreachable (error id {error_id})"
    assert stored.content == reply.text
    assert stored.sources == []
    await stored_message(live, reply.question_id, content=HOTEL_QUESTION, role="user")


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")
async def test_upload_is_indexed_then_cited_with_its_page(live: LiveChat) -> None:
    live.answer_with(None)  # the extractive answerer: quotes, with citations
    grace = await new_account(live, "grace")
    # Two pages, so the citation's page is checked; pdf_multi-column.pdf (13 pages) works
    # as well but its embedding alone takes 12-40 s on a busy machine.
    pdf = FIXTURES / "pdf_layout-parser-paper-fast.pdf"
    async with ChatSession(live.url, grace.credentials) as chat:
        queued = answer_of(await chat.ask("", files=[pdf]))
        indexed = await chat.until_shown(f"indexed {pdf.name}")
        reply = await chat.ask("Which frameworks are existing DL models developed with?")
    assert indexed["id"] == queued["id"]  # the upload's own message, updated until done
    confirmation = indexed["output"]
    assert f"indexed {pdf.name}: 2 pages, " in confirmation
    assert "Only you can search it" in confirmation
    async with live.runtime.sessions() as session:
        upload = await session.scalar(
            select(File).where(File.owner_id == uuid.UUID(grace.principal.user_id))
        )
    assert upload is not None and upload.status == "ready" and upload.scope == "personal"
    assert upload.chunk_count > 0 and f"{upload.chunk_count} chunks" in confirmation

    assert "TensorFlow" in reply.text and "PyTorch" in reply.text
    stored = await stored_message(live, answer_of(reply)["id"], model="extractive")
    cited = [s for s in stored.sources if s["cited"]]
    assert cited and all(s["file_id"] == str(upload.id) for s in cited)
    assert cited[0]["page"] == 2 and cited[0]["file_name"] == pdf.name
    chips = [e["props"] for e in reply.elements if e["type"] == "custom"]
    assert chips and chips[0]["pdf"] == f"/files/{upload.id}" and chips[0]["page"] == 2

    async with http_client(live.url, grace.credentials) as http:
        original = await http.get(f"/files/{upload.id}")
    assert original.status_code == 200 and original.content == pdf.read_bytes()


async def test_the_chat_answers_while_an_upload_is_ingested_and_another_chat_shows_it(
    live: LiveChat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    judy = await new_account(live, "judy")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE + f"\nMarker {uuid.uuid4().hex}.\n")
    # The upload's embedding waits for the test: it is surely still running meanwhile.
    release = threading.Event()
    embeddings = live.runtime.kb.embeddings
    embed_documents = embeddings.embed_documents

    def held(texts: list[str]) -> list[list[float]]:
        release.wait(60)
        return embed_documents(texts)

    monkeypatch.setattr(embeddings, "embed_documents", held)
    try:
        async with ChatSession(live.url, judy.credentials) as chat:
            queued = answer_of(await chat.ask("", files=[note]))
            assert queued["output"] == "heron.md: queued"
            await chat.until_shown("heron.md: embedding 0 of ")  # its message, live
            same_chat = await chat.ask(HOTEL_QUESTION)
            async with ChatSession(live.url, judy.credentials) as other:
                shown = await other.until_shown("heron.md: embedding")
                assert "Your uploads" not in str(shown["output"])  # one file: its line
                other_chat = await other.ask(HOTEL_QUESTION)
                release.set()
                done = await other.until_shown("indexed heron.md")
            final = await chat.until_shown("indexed heron.md")
    finally:
        release.set()
    assert same_chat.text == other_chat.text == HOTEL_REPLY  # answered while it ran
    assert final["id"] == queued["id"] and "Only you can search it" in final["output"]
    assert shown["id"] == done["id"] and shown["id"] != queued["id"]
    stored = await stored_message(live, queued["id"])  # the final text is what is kept
    assert stored.content.startswith("indexed heron.md")


async def test_an_upload_names_its_chat_and_its_notices_stand_apart(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(None)
    kate = await new_account(live, "kate")
    note = tmp_path / "kestrel.md"
    note.write_text(f"# Kestrel\n\nThe kestrel hovers over the car park. {uuid.uuid4().hex}\n")
    async with ChatSession(live.url, kate.credentials) as chat:
        queued = answer_of(await chat.ask("", files=[note]))
        done = await chat.until_shown("indexed kestrel.md")
        thread_id = chat.thread_id
    assert thread_id is not None
    # Seen in the conversation itself, outside the run: no step folds it, none rates it.
    assert queued.get("parentId") is None and done["id"] == queued["id"]
    assert "indexed kestrel.md: 1 chunk." in done["output"]  # not "1 chunks"
    titles = await eventually(
        lambda: _titles_if(live, kate, lambda names: "kestrel.md" in names or None)
    )
    assert "kestrel.md" in titles and "New chat" not in titles
    # The user's bubble names the upload (the preview of Chainlit's removed copy would fail).
    said = await eventually(lambda: _user_said(live, thread_id))
    assert said == ["Uploaded kestrel.md"]


async def test_an_unsupported_upload_says_in_words_what_is_read(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(None)
    lena = await new_account(live, "lena")
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("notes.txt", "hello")
    async with ChatSession(live.url, lena.credentials) as chat:
        reply = await chat.ask("", files=[bundle])
    said = answer_of(reply)["output"]
    assert said.startswith('Not added: "bundle.zip" is a ZIP archive')
    assert "PDF, Word (.docx), PowerPoint (.pptx), HTML, Markdown, plain text and CSV" in said
    assert "application/" not in said
    async with live.runtime.sessions() as session:
        rows = await session.scalars(
            select(File).where(File.owner_id == uuid.UUID(lena.principal.user_id))
        )
        assert rows.all() == []  # nothing queued, nothing listed as failed


async def test_the_files_command_points_to_the_files_page(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    mia = await new_account(live, "mia")
    async with ChatSession(live.url, mia.credentials) as chat:
        reply = await chat.ask("/files")
    said = answer_of(reply)
    assert "[My files](/my/files)" in said["output"] and said.get("parentId") is None
    titles = await eventually(lambda: _titles_if(live, mia, lambda names: names or None))
    assert titles == ["My files"]  # not "/files"


async def _titles_if(
    live: LiveChat, account: Account, ready: Callable[[list[str]], object]
) -> list[str] | None:
    names = [str(t["name"]) for t in await list_threads(live, account)]
    return names if ready(names) else None


async def _user_said(live: LiveChat, thread_id: str) -> list[str] | None:
    said = [m.content for m in await chat_messages(live, thread_id) if m.role == "user"]
    return said if said and all(said) else None


async def test_other_users_cannot_open_a_thread_or_use_a_personal_upload(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(None)
    owner = await new_account(live, "heidi")
    intruder = await new_account(live, "ivan")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE)
    async with ChatSession(live.url, owner.credentials) as chat:
        await chat.ask("", files=[note])
        await chat.until_shown("indexed heron.md")
        own = await chat.ask(SECRET_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None and "Bluefinch" in own.text  # the owner is answered from it
    async with live.runtime.sessions() as session:
        upload = await session.scalar(
            select(File).where(File.owner_id == uuid.UUID(owner.principal.user_id))
        )
    assert upload is not None

    async with http_client(live.url, intruder.credentials) as http:
        read = await http.get(f"/chat/project/thread/{thread_id}")
        rename = await http.put(
            "/chat/project/thread", json={"threadId": thread_id, "name": "mine now"}
        )
        delete = await http.request("DELETE", "/chat/project/thread", json={"threadId": thread_id})
        original = await http.get(f"/files/{upload.id}")
    assert (read.status_code, rename.status_code, delete.status_code) == (401, 401, 401)
    assert original.status_code == 404  # never confirms that a hidden file exists
    assert thread_id not in [t["id"] for t in await list_threads(live, intruder)]
    with pytest.raises(socketio.exceptions.ConnectionError):
        await ChatSession(live.url, intruder.credentials, thread_id=thread_id).connect()

    async with ChatSession(live.url, intruder.credentials) as chat:
        other = await chat.ask(SECRET_QUESTION)
    assert "Bluefinch" not in other.text
    stored = await stored_message(live, answer_of(other)["id"], model="extractive")
    assert str(upload.id) not in {s["file_id"] for s in stored.sources}
    assert other.text == NOT_FOUND_TEXT or all(
        s["file_id"] == live.handbook_id for s in stored.sources
    )
    async with live.runtime.sessions() as session:
        chat_row = await session.get(Chat, uuid.UUID(thread_id))
    assert chat_row is not None and chat_row.deleted_at is None
    assert chat_row.title != "mine now"


async def test_a_deactivated_users_next_message_is_refused(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    judy = await new_account(live, "judy")
    async with ChatSession(live.url, judy.credentials) as chat:
        assert (await chat.ask(HOTEL_QUESTION)).text == HOTEL_REPLY
        async with live.runtime.sessions() as session:
            await users.deactivate(session, judy.email)
        assert await live.runtime.session_store.revoke_user(judy.principal.user_id) == 1
        refused = await chat.ask("One more question about hotels?")
    assert "signed out" in refused.text and refused.tokens == []
    refusal = await stored_message(live, answer_of(refused)["id"], content=refused.text)
    assert refusal.model is None
    with pytest.raises(SignInRefused):
        await sign_in(live.url, judy.email, PASSWORD)


async def test_a_deactivated_user_can_no_longer_open_their_history(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    mallory = await new_account(live, "mallory")
    async with ChatSession(live.url, mallory.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    await stored_message(live, answer_of(reply)["id"], model="fake-chat")
    async with live.runtime.sessions() as session:
        await users.deactivate(session, mallory.email)
    await live.runtime.session_store.revoke_user(mallory.principal.user_id)

    async with http_client(live.url, mallory.credentials) as http:
        read = await http.get(f"/chat/project/thread/{thread_id}")
        rename = await http.put("/chat/project/thread", json={"threadId": thread_id, "name": "x"})
    assert (read.status_code, rename.status_code) == (401, 401)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await ChatSession(live.url, mallory.credentials, thread_id=thread_id).connect()


async def test_password_check_runs_off_the_event_loop(
    live: LiveChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    nina = await new_account(live, "nina")
    on_the_loop: list[bool] = []
    verify = users.verify_password

    def spy(password_hash: str | None, password: str) -> bool:
        try:
            asyncio.get_running_loop()
            on_the_loop.append(True)
        except RuntimeError:  # a worker thread: no loop runs here
            on_the_loop.append(False)
        return verify(password_hash, password)

    monkeypatch.setattr(users, "verify_password", spy)
    await sign_in(live.url, nina.email, PASSWORD)
    assert on_the_loop == [False]


async def test_sign_in_with_a_wrong_password_is_refused(live: LiveChat) -> None:
    kim = await new_account(live, "kim")
    with pytest.raises(SignInRefused):
        await sign_in(live.url, kim.email, "not the password")
    async with httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get(f"/chat/project/thread/{uuid.uuid4()}")).status_code == 401


# --- Streaming, regenerate, the model picker -------------------------------------------------


async def test_an_extractive_answer_streams_in_many_frames_its_sources_as_they_are_cited(
    live: LiveChat,
) -> None:
    pace = Settings().answer_reveal_words_per_second
    live.answer_with(None, reveal_words_per_second=pace)
    grace = await new_account(live, "grace")
    async with ChatSession(live.url, grace.credentials) as chat:
        reply = await chat.ask("Describe the equipment engineers get and the hotel costs.")
    answer = answer_of(reply)
    # The streamed frames spell the stored text; at the reading pace, a few words a frame.
    assert "".join(reply.tokens) == reply.text
    words = len(reply.text.split())
    assert reply.token_count >= max(5, words // 6), (reply.token_count, words)
    assert reply.duration >= 0.8 * (words - 1) / pace
    # Each source's chip and "[n]" link arrive once its citation has been streamed, before
    # the end, each once.
    cited = [s for s in (await stored_message(live, answer["id"])).sources if s["cited"]]
    assert len(cited) == 2
    chips = [
        (e["props"]["number"], frames)
        for e, frames in zip(reply.elements, reply.element_frames, strict=True)
        if e["name"] == "CitedSource"
    ]
    assert [number for number, _ in chips] == [1, 2]
    assert sorted(e["name"] for e in reply.elements if e["name"] != "CitedSource") == [
        "[1]",
        "[2]",
    ]
    for number, frames in chips:
        assert f"[{number}]" in "".join(reply.tokens[:frames])
    assert chips[0][1] < reply.token_count  # mid-stream
    assert all(e["forId"] == answer["id"] for e in reply.elements)


async def test_regenerate_stores_a_second_answer_and_the_memory_holds_only_the_new_one(
    live: LiveChat,
) -> None:
    first, discarded, regenerated = (
        HOTEL_ANSWER,
        "Business class, always [1].",
        "Economy class is the default for flights under six hours [1].",
    )
    model = scripted(
        first,
        "Which class do I fly?",  # condensed follow-up
        discarded,
        "Which class do I fly?",  # condensed again, for the regenerated answer
        regenerated,
        "Where do I book flights?",
        "Through the travel portal [1].",
    )
    live.answer_with(model)
    henry = await new_account(live, "henry")
    async with ChatSession(live.url, henry.credentials) as chat:
        await chat.ask(HOTEL_QUESTION)
        old = await chat.ask("And flights?")
        [action] = [a for a in old.actions if a["forId"] == answer_of(old)["id"]]
        assert action["name"] == "regenerate" and action["label"] == "Regenerate"
        new = await chat.act(action)
        assert new.text == "".join(new.tokens) == regenerated
        assert answer_of(new)["id"] != answer_of(old)["id"]
        await chat.ask("And where do I book?")
        thread_id = chat.thread_id
    assert thread_id is not None

    # Both answers to the question are stored, in order, in the same chat.
    await stored_message(live, answer_of(new)["id"], model="fake-chat")
    messages = await chat_messages(live, thread_id)
    assert [(m.role, m.content) for m in messages][2:5] == [
        ("user", "And flights?"),
        ("assistant", discarded),
        ("assistant", regenerated),
    ]
    # What the model saw: the regenerated answer had the conversation before its question,
    # and the next question's memory holds the new answer, never the discarded one.
    regenerating, following = model.calls[3:5], model.calls[5:7]
    seen = [[m.content for m in call] for call in regenerating + following]
    assert all(discarded not in text for call in seen for text in call)
    assert all(sum(first in text for text in call) == 1 for call in seen)
    assert any(regenerated in text for call in following for text in [m.content for m in call])


async def test_a_resumed_chat_regenerates_its_answers_with_the_memory_before_them(
    live: LiveChat,
) -> None:
    first, second, regenerated = (
        HOTEL_ANSWER,
        "Business class, always [1].",
        "Economy class is the default for flights under six hours [1].",
    )
    model = scripted(first, "Which class do I fly?", second, "Which class do I fly?", regenerated)
    live.answer_with(model)
    irene = await new_account(live, "irene")
    async with ChatSession(live.url, irene.credentials) as chat:
        asked_first = await chat.ask(HOTEL_QUESTION)
        asked_second = await chat.ask("And flights?")
        thread_id = chat.thread_id
    assert thread_id is not None
    await stored_message(live, answer_of(asked_second)["id"], model="fake-chat")

    async with ChatSession(live.url, irene.credentials, thread_id=thread_id) as resumed:
        # Each answer gets its Regenerate button back (Chainlit does not store actions).
        answers = [answer_of(asked_first)["id"], answer_of(asked_second)["id"]]
        assert [a["forId"] for a in resumed.restored_actions] == answers
        assert {a["name"] for a in resumed.restored_actions} == {"regenerate"}
        again = await resumed.act(resumed.restored_actions[1])
    assert again.text == regenerated
    # The model saw the first question and answer, not the answer being replaced.
    seen = [m.content for call in model.calls[3:5] for m in call]
    assert HOTEL_QUESTION in seen and first in seen and second not in seen
    roles = ["user", "assistant", "user", "assistant", "assistant"]
    messages = await eventually(lambda: _roles_when(live, thread_id, roles))
    assert messages[-1].content == regenerated


async def test_regenerate_counts_against_the_rate_limit(
    live: LiveChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = live.runtime.settings.model_copy(update={"rate_limit_per_minute": 2})
    monkeypatch.setattr(
        live.runtime, "limiter", RateLimiter.from_settings(live.runtime.redis.client, strict)
    )
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    iris = await new_account(live, "iris")
    async with ChatSession(live.url, iris.credentials) as chat:
        asked = await chat.ask(HOTEL_QUESTION)
        [action] = asked.actions
        again = await chat.act(action)
        refused = await chat.act(action)
    assert again.text == HOTEL_REPLY
    assert "limit of 2 messages per minute" in refused.text and refused.tokens == []


async def test_the_starters_offer_a_policy_question_only_to_who_may_read_documents(
    live: LiveChat,
) -> None:
    kate = await new_account(live, "kate")
    async with http_client(live.url, kate.credentials) as http:
        response = await http.get("/chat/project/settings", params={"language": "en-US"})
    response.raise_for_status()
    labels = [starter["label"] for starter in response.json()["starters"]]
    assert labels == ["What can you do?", "Find a policy", "Upload a file"]  # the handbook
    # With nothing to read, the policy question could only be answered "not found".
    assert [label for label, _ in starters_for(readable_documents=0)] == [
        "What can you do?",
        "Upload a file",
    ]


async def test_a_picker_shows_only_with_two_models_and_the_chosen_one_answers(
    live: LiveChat,
) -> None:
    jack = await new_account(live, "jack")

    async def profiles() -> list[dict[str, Any]]:
        async with http_client(live.url, jack.credentials) as http:
            response = await http.get("/chat/project/settings", params={"language": "en-US"})
        response.raise_for_status()
        return list(response.json()["chatProfiles"])

    live.answer_with(None)
    assert await profiles() == []

    live.answer_with(None, alternatives={"openai:fake": scripted(HOTEL_ANSWER, repeat=True)})
    shown = await profiles()
    assert [(p["name"], p["default"]) for p in shown] == [
        ("extractive", True),
        ("openai:fake", False),
    ]
    async with ChatSession(live.url, jack.credentials, chat_profile="openai:fake") as chat:
        reply = await chat.ask(HOTEL_QUESTION)
    assert reply.text == HOTEL_REPLY
    await stored_message(live, answer_of(reply)["id"], model="openai:fake")
    async with ChatSession(live.url, jack.credentials) as chat:  # no choice: the default
        default = await chat.ask(HOTEL_QUESTION)
    await stored_message(live, answer_of(default)["id"], model="extractive")
