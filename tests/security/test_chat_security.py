"""The chat under attack (issue 9): permissions, other users' chats and feedback,
forged sources, edits, remote images, uploads left on disk, upload rate limits, bad input.

Driven over HTTP and socket.io against the real app (tests/web/test_chat.py's `live`), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
import socketio.exceptions
from chainlit.config import FILES_DIRECTORY
from sqlalchemy import select

from copilot import users
from copilot.bench.chat_client import ChatSession, http_client
from copilot.db.models import Chat, Feedback, File, Message, Permission, Role
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.state.rate_limits import RateLimiter
from tests.security._chat_support import RawChatSession, account, files_under
from tests.web.test_chat import (
    HOTEL_ANSWER,
    HOTEL_QUESTION,
    HOTEL_REPLY,
    SECRET_NOTE,
    BrokenModel,
    LiveChat,
    answer_of,
    chat_messages,
    eventually,
    live,
    scripted,
    stored_message,
)

__all__ = ["live"]  # the fixture, imported so this module gets its own app

REMOTE_IMAGE = re.compile(r"(?<!\\)!\[|<img", re.IGNORECASE)


async def _user_files(live: LiveChat, user_id: str) -> list[File]:
    async with live.runtime.sessions() as session:
        rows = await session.scalars(select(File).where(File.owner_id == uuid.UUID(user_id)))
        return list(rows.all())


# --- Finding 1: chat.use and documents.upload -----------------------------------------------------


async def test_read_only_user_may_chat_but_may_not_upload(live: LiveChat, tmp_path: Path) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    reader = await account(live, "reader", role="Read Only")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE)
    async with RawChatSession(live.url, reader.credentials) as chat:
        assert (await chat.ask(HOTEL_QUESTION)).text == HOTEL_REPLY
        async with http_client(live.url, reader.credentials) as http:
            upload = await http.post(
                "/chat/project/file",
                params={"session_id": chat.session_id},
                files={"file": (note.name, note.read_bytes(), "text/markdown")},
            )
        await chat.said("Uploading files needs the documents.upload permission")
    assert upload.status_code == 403, upload.text
    assert "documents.upload" in upload.json()["detail"]
    assert await _user_files(live, reader.principal.user_id) == []
    assert not any(SECRET_NOTE.encode() == p.read_bytes() for p in files_under(FILES_DIRECTORY))


async def test_an_upload_sent_after_losing_the_right_is_not_ingested(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    owner = await account(live, "demoted")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE)
    async with RawChatSession(live.url, owner.credentials) as chat:
        reference = await chat.upload(note)
        async with live.runtime.sessions() as session:
            await users.set_role(session, owner.email, "Read Only")
        reply = await chat.send_step("", references=[{"id": reference["id"]}])
    assert "documents.upload" in reply.text
    assert await _user_files(live, owner.principal.user_id) == []


async def test_a_question_needs_chat_use(live: LiveChat) -> None:
    model = scripted(HOTEL_ANSWER, repeat=True)
    live.answer_with(model)
    async with live.runtime.sessions() as session:
        readable = await session.scalar(
            select(Permission).where(Permission.name == "documents.read")
        )
        session.add(Role(name=f"No chat {uuid.uuid4().hex[:6]}", permissions=[readable]))
        await session.commit()
        role = await session.scalar(select(Role).where(Role.name.startswith("No chat")))
        assert role is not None
        role_name = role.name
    mute = await account(live, "mute", role=role_name)
    async with ChatSession(live.url, mute.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
    assert "chat.use" in reply.text and model.calls == []
    await stored_message(live, reply.question_id, content=HOTEL_QUESTION)


# --- Finding 2 and 23: feedback only by the chat's owner; unknown ids are 4xx ---------------------


async def test_another_user_cannot_rate_overwrite_or_delete_feedback(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    alice = await account(live, "alice")
    bob = await account(live, "bob")
    async with ChatSession(live.url, alice.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    answer_id = answer_of(reply)["id"]
    await stored_message(live, answer_id, model="fake-chat")

    def rating(value: int, comment: str) -> dict[str, object]:
        return {
            "feedback": {
                "forId": answer_id,
                "threadId": thread_id,
                "value": value,
                "comment": comment,
            },
            "sessionId": str(uuid.uuid4()),
        }

    async with http_client(live.url, alice.credentials) as http:
        given = await http.put("/chat/feedback", json=rating(1, "Spot on"))
    assert given.status_code == 200, given.text
    feedback_id = given.json()["feedbackId"]

    async with http_client(live.url, bob.credentials) as http:
        overwrite = await http.put("/chat/feedback", json=rating(0, "bob was here"))
        removed = await http.request("DELETE", "/chat/feedback", json={"feedbackId": feedback_id})
    assert overwrite.status_code == 403, overwrite.text
    assert removed.status_code == 403, removed.text
    async with live.runtime.sessions() as session:
        rows = list(
            (
                await session.scalars(
                    select(Feedback).where(Feedback.message_id == uuid.UUID(answer_id))
                )
            ).all()
        )
    assert [(str(r.user_id), r.value, r.comment) for r in rows] == [
        (alice.principal.user_id, 1, "Spot on")
    ]


async def test_feedback_for_an_unknown_message_is_a_404(live: LiveChat) -> None:
    carol = await account(live, "carol")
    async with http_client(live.url, carol.credentials) as http:
        response = await http.put(
            "/chat/feedback",
            json={"feedback": {"forId": str(uuid.uuid4()), "value": 1}, "sessionId": "x"},
        )
        gone = await http.request(
            "DELETE", "/chat/feedback", json={"feedbackId": str(uuid.uuid4())}
        )
    assert response.status_code == 404, response.text
    assert "no answer" in response.json()["detail"].lower()
    assert gone.status_code == 404, gone.text


async def test_an_action_or_element_for_an_unknown_session_is_a_404(live: LiveChat) -> None:
    dave = await account(live, "dave")
    async with http_client(live.url, dave.credentials) as http:
        response = await http.post(
            "/chat/project/action",
            json={
                "sessionId": str(uuid.uuid4()),
                "action": {
                    "name": "delete_file",
                    "payload": {"file_id": str(uuid.uuid4())},
                    "id": str(uuid.uuid4()),
                    "forId": str(uuid.uuid4()),
                },
            },
        )
        element = {"sessionId": str(uuid.uuid4()), "element": {"type": "custom", "id": "x"}}
        updated = await http.put("/chat/project/element", json=element)
        removed = await http.request("DELETE", "/chat/project/element", json=element)
    assert response.status_code == 404, response.text
    assert "session" in response.json()["detail"].lower()
    assert (updated.status_code, removed.status_code) == (404, 404)


# --- Cross-user thread access ---------------------------------------------------------------------


async def test_another_user_cannot_reach_a_thread_by_any_route(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    owner = await account(live, "erin")
    intruder = await account(live, "eve")
    async with ChatSession(live.url, owner.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None
    await stored_message(live, answer_of(reply)["id"], model="fake-chat")
    async with http_client(live.url, owner.credentials) as http:
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    elements = thread["elements"]  # the cited source's chip and its [n] link
    assert elements

    async with http_client(live.url, intruder.credentials) as http:
        read = await http.get(f"/chat/project/thread/{thread_id}")
        element_reads = [
            await http.get(f"/chat/project/thread/{thread_id}/element/{element['id']}")
            for element in elements
        ]
        rename = await http.put("/chat/project/thread", json={"threadId": thread_id, "name": "x"})
        delete = await http.request("DELETE", "/chat/project/thread", json={"threadId": thread_id})
        share = await http.put(
            "/chat/project/thread/share", json={"threadId": thread_id, "isShared": True}
        )
        shared = await http.get(f"/chat/project/share/{thread_id}")
    assert read.status_code == 401 and {r.status_code for r in element_reads} == {401}
    assert rename.status_code == 401 and delete.status_code == 401
    assert share.status_code in (401, 403) and shared.status_code == 404
    with pytest.raises(socketio.exceptions.ConnectionError):
        await ChatSession(live.url, intruder.credentials, thread_id=thread_id).connect()
    async with live.runtime.sessions() as session:
        chat_row = await session.get(Chat, uuid.UUID(thread_id))
    assert chat_row is not None and chat_row.deleted_at is None and chat_row.title != "x"


# --- Finding 11: no exception text in answers -----------------------------------------------------


async def test_a_failed_answer_shows_an_error_id_and_no_exception_text(live: LiveChat) -> None:
    live.answer_with(BrokenModel(messages=iter([])), name="broken-model")
    frank = await account(live, "frank")
    async with ChatSession(live.url, frank.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
    assert "ConnectionError" not in reply.text and "unreachable" not in reply.text
    error_id = re.search(r"error id ([0-9a-f]{8,})", reply.text)
    assert error_id is not None, reply.text
    stored = await stored_message(live, answer_of(reply)["id"], model="broken-model")
    assert stored.error is not None
    assert "ConnectionError: model endpoint unreachable" in stored.error
    assert error_id.group(1) in stored.error


# --- Finding 16: another user's deleted chat ------------------------------------------------------


async def test_a_socket_for_another_users_deleted_chat_is_refused(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    victim = await account(live, "grace")
    attacker = await account(live, "mallet")
    async with ChatSession(live.url, victim.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None
    await stored_message(live, answer_of(reply)["id"], model="fake-chat")
    async with http_client(live.url, victim.credentials) as http:
        deleted = await http.request("DELETE", "/chat/project/thread", json={"threadId": thread_id})
    assert deleted.status_code == 200

    hijack = ChatSession(live.url, attacker.credentials, thread_id=thread_id)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await hijack.connect()
            # Accepted (the hole): whatever it says would land in the victim's chat.
            await hijack.ask("Attacker question about hotels?")
    finally:
        await hijack.close()
    messages = await chat_messages(live, thread_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert all("Attacker" not in m.content for m in messages)


async def test_reopening_ones_own_deleted_chat_starts_a_new_one(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    owner = await account(live, "heidi")
    async with ChatSession(live.url, owner.credentials) as chat:
        await chat.ask(HOTEL_QUESTION)
        thread_id = chat.thread_id
    assert thread_id is not None
    await eventually(lambda: chat_messages(live, thread_id))
    async with http_client(live.url, owner.credentials) as http:
        await http.request("DELETE", "/chat/project/thread", json={"threadId": thread_id})
    await eventually(lambda: _two_messages(live, thread_id))

    async with ChatSession(live.url, owner.credentials, thread_id=thread_id) as again:
        reply = await again.ask("A new question about hotels?")
    new_thread = answer_of(reply)["threadId"]
    assert new_thread != thread_id
    await stored_message(live, reply.question_id, content="A new question about hotels?")
    question = await stored_message(live, reply.question_id)
    assert str(question.chat_id) == new_thread
    assert len(await chat_messages(live, thread_id)) == 2


async def _two_messages(live: LiveChat, thread_id: str) -> list[Message] | None:
    messages = await chat_messages(live, thread_id)
    return messages if len(messages) == 2 else None


# --- Finding 17: editing keeps history ------------------------------------------------------------


async def test_editing_a_question_keeps_the_earlier_messages(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    ivan = await account(live, "ivan")
    async with RawChatSession(live.url, ivan.credentials) as chat:
        first = await chat.ask("First question about hotels?")
        second = await chat.ask("Second question about hotels?")
        thread_id = chat.thread_id
        assert thread_id is not None
        await stored_message(live, answer_of(second)["id"], model="fake-chat")
        edited = await chat.edit(first.question_id, "Edited question about hotels?")
    assert edited.text == HOTEL_REPLY
    await stored_message(live, first.question_id, content="Edited question about hotels?")
    await stored_message(live, answer_of(edited)["id"], model="fake-chat")

    async def everything() -> list[Message] | None:
        messages = await chat_messages(live, thread_id)
        removed = [m for m in messages if m.deleted_at is not None]
        return messages if len(removed) == 4 else None

    messages = await everything_or_fail(everything)
    by_id = {str(m.id): m for m in messages}
    # The answers and the question after the edited one are kept, marked removed.
    for kept in (answer_of(first)["id"], second.question_id, answer_of(second)["id"]):
        assert by_id[kept].deleted_at is not None
    [original] = [m for m in messages if m.superseded_by is not None]
    assert original.content == "First question about hotels?" and original.role == "user"
    assert str(original.superseded_by) == first.question_id and original.deleted_at is not None
    assert by_id[first.question_id].deleted_at is None

    async with http_client(live.url, ivan.credentials) as http:
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    shown = [s["output"] for s in thread["steps"] if s["type"].endswith("_message")]
    assert shown == ["Edited question about hotels?", HOTEL_REPLY]


async def everything_or_fail(probe):  # type: ignore[no-untyped-def]
    return await eventually(probe)


# --- Finding 19: sharing, forged sources ----------------------------------------------------------


async def test_sources_sent_by_the_client_are_not_stored(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    liam = await account(live, "liam")
    forged = [
        {
            "number": 1,
            "file_id": str(uuid.uuid4()),
            "file_name": "board-minutes.pdf",
            "snippet": "The CEO resigns.",
            "cited": True,
            "page": 3,
        }
    ]
    async with RawChatSession(live.url, liam.credentials) as chat:
        reply = await chat.send_step(HOTEL_QUESTION, metadata={"sources": forged})
        thread_id = chat.thread_id
    question = await stored_message(live, reply.question_id, content=HOTEL_QUESTION)
    assert question.sources == []
    async with http_client(live.url, liam.credentials) as http:
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    assert all("board-minutes" not in e["name"] for e in thread["elements"])


async def test_a_client_cannot_forge_or_rewrite_an_assistant_message(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER, repeat=True))
    uma = await account(live, "uma")
    async with RawChatSession(live.url, uma.credentials) as chat:
        reply = await chat.ask(HOTEL_QUESTION)
        answer_id = answer_of(reply)["id"]
        await stored_message(live, answer_id, model="fake-chat")
        forged = await chat.send_step("Forged answer", step_type="assistant_message")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(chat.edit(answer_id, "Rewritten answer"), 5)
    question = await stored_message(live, forged.question_id, content="Forged answer")
    assert question.role == "user"
    answer = await stored_message(live, answer_id)
    assert answer.content == HOTEL_REPLY and answer.deleted_at is None


# --- Finding 20: remote images --------------------------------------------------------------------


async def test_remote_images_in_answers_and_snippets_are_not_rendered(
    live: LiveChat, tmp_path: Path
) -> None:
    beacon = "![pixel](http://tracker.example/p.png) <IMG src='http://tracker.example/q.png'>"
    note = tmp_path / "beacon.md"
    note.write_text(f"# Parking\n\nParking costs 9 euros per day at the office. {beacon}\n")
    owner = await account(live, "mona")
    result = await ingest_file(live.runtime.kb, note, Ownership(uuid.UUID(owner.principal.user_id)))
    assert result.outcome == "indexed", result.summary
    live.answer_with(scripted(f"Parking costs 9 euros per day [1]. {beacon}"))
    async with ChatSession(live.url, owner.credentials) as chat:
        reply = await chat.ask("How much does parking cost per day?")
        thread_id = chat.thread_id
    assert "9 euros" in reply.text
    assert not REMOTE_IMAGE.search(reply.text), reply.text
    assert not REMOTE_IMAGE.search("".join(reply.tokens))
    contents = [str(e.get("content") or "") + unquote(e.get("url") or "") for e in reply.elements]
    assert any("Parking" in c for c in contents), reply.elements
    assert not any(REMOTE_IMAGE.search(c) for c in contents), contents
    stored = await stored_message(live, answer_of(reply)["id"], model="fake-chat")
    assert not REMOTE_IMAGE.search(stored.content)
    async with http_client(live.url, owner.credentials) as http:
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    for element in thread["elements"]:
        assert not REMOTE_IMAGE.search(element.get("content") or "")
        assert not REMOTE_IMAGE.search(unquote(element.get("url") or ""))


async def test_chat_pages_forbid_remote_images(live: LiveChat) -> None:
    nora = await account(live, "nora")
    async with http_client(live.url, nora.credentials) as http:
        page = await http.get("/chat/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers.get("content-security-policy", "")
    assert "img-src 'self' data: blob:" in policy


# --- Finding 21: no copy of an upload left behind -------------------------------------------------


async def test_uploads_leave_no_copy_in_chainlits_folder_and_delete_removes_ours(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(None)
    olga = await account(live, "olga")
    secret = SECRET_NOTE + f"\nMarker {uuid.uuid4().hex}.\n"
    note = tmp_path / "heron.md"
    note.write_text(secret)
    async with RawChatSession(live.url, olga.credentials) as chat:
        reference = await chat.upload(note)
        await chat.send_step("", references=[{"id": reference["id"]}])
        await chat.said("indexed heron.md", timeout=60)
        session_folder = FILES_DIRECTORY / chat.session_id
        assert not any(p.read_bytes() == secret.encode() for p in files_under(session_folder))
        async with http_client(live.url, olga.credentials) as http:
            served = await http.get(
                f"/chat/project/file/{reference['id']}", params={"session_id": chat.session_id}
            )
            assert served.status_code == 404
            [upload] = await _user_files(live, olga.principal.user_id)
            # Deleted from the files page, after its confirmation (the form's CSRF token).
            confirm = await http.get(f"/my/files/{upload.id}/delete")
            token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', confirm.text)
            assert confirm.status_code == 200 and token, confirm.text
            deleted = await http.post(
                f"/my/files/{upload.id}/delete", data={"csrf_token": token.group(1)}
            )
        assert deleted.status_code == 303, deleted.text
    assert await _user_files(live, olga.principal.user_id) == []
    everywhere = files_under(live.runtime.settings.data_dir) + files_under(FILES_DIRECTORY)
    assert not [p for p in everywhere if secret.encode() in p.read_bytes()]


async def test_the_chat_session_ending_under_an_ingestion_does_not_break_it(
    live: LiveChat, tmp_path: Path
) -> None:
    live.answer_with(None)
    vera = await account(live, "vera")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE + f"\nMarker {uuid.uuid4().hex}.\n")
    async with RawChatSession(live.url, vera.credentials) as chat:
        reference = await chat.upload(note)
        reply = await chat.send_step("", references=[{"id": reference["id"]}])
    # The chat (and Chainlit's files folder) is gone; the upload is added all the same.
    assert "heron.md: queued" in reply.text, reply.text
    assert str(FILES_DIRECTORY) not in reply.text
    deadline = time.monotonic() + 60
    while not [f for f in await _user_files(live, vera.principal.user_id) if f.status == "ready"]:
        assert time.monotonic() < deadline, await _user_files(live, vera.principal.user_id)
        await asyncio.sleep(0.1)


async def test_an_upload_gone_before_it_is_taken_in_is_named_without_a_path(
    live: LiveChat, tmp_path: Path
) -> None:
    walt = await account(live, "walt")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE)
    async with RawChatSession(live.url, walt.credentials) as chat:
        reference = await chat.upload(note)
        shutil.rmtree(FILES_DIRECTORY / chat.session_id)
        reply = await chat.send_step("", references=[{"id": reference["id"]}])
    assert "heron.md was removed before it could be added" in reply.text, reply.text
    assert str(FILES_DIRECTORY) not in reply.text and "Errno" not in reply.text
    assert await _user_files(live, walt.principal.user_id) == []


# --- Finding 22: uploads are rate limited ---------------------------------------------------------


async def test_uploads_count_against_the_per_minute_limit(
    live: LiveChat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = live.runtime.settings.model_copy(update={"rate_limit_per_minute": 3})
    monkeypatch.setattr(
        live.runtime, "limiter", RateLimiter.from_settings(live.runtime.redis.client, strict)
    )
    pia = await account(live, "pia")
    statuses = []
    async with (
        RawChatSession(live.url, pia.credentials) as chat,
        http_client(live.url, pia.credentials) as http,
    ):
        for n in range(6):
            response = await http.post(
                "/chat/project/file",
                params={"session_id": chat.session_id},
                files={
                    "file": (
                        f"note{n}.md",
                        f"# Note {n}\n\nText {n}.".encode(),
                        "text/markdown",
                    )
                },
            )
            statuses.append((response.status_code, response.json().get("detail", "")))
        await chat.said("limit of 3 messages per minute (each upload counts as a message)")
    assert [s for s, _ in statuses] == [200, 200, 200, 429, 429, 429]
    assert "limit of 3 messages per minute" in statuses[3][1]


# --- Finding 23: bad input ------------------------------------------------------------------------


async def test_an_empty_upload_is_named_empty_in_the_chat(live: LiveChat, tmp_path: Path) -> None:
    quinn = await account(live, "quinn")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    async with ChatSession(live.url, quinn.credentials) as chat:
        reply = await chat.ask("", files=[empty])
    assert "empty.txt" in reply.text and "is empty (0 bytes)" in reply.text
    assert not files_under(FILES_DIRECTORY / chat.session_id)


async def test_a_question_with_a_nul_is_saved(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    rita = await account(live, "rita")
    async with ChatSession(live.url, rita.credentials) as chat:
        reply = await chat.ask("How much are hotel\x00 costs reimbursed per night?")
    assert reply.text == HOTEL_REPLY
    await stored_message(
        live, reply.question_id, content="How much are hotel costs reimbursed per night?"
    )


async def test_a_very_long_file_name_shows_no_raw_error(live: LiveChat, tmp_path: Path) -> None:
    live.answer_with(None)
    sam = await account(live, "sam")
    long_name = tmp_path / ("n" * 240 + ".md")
    long_name.write_text(SECRET_NOTE)
    async with RawChatSession(live.url, sam.credentials) as chat:
        async with http_client(live.url, sam.credentials) as http:
            response = await http.post(
                "/chat/project/file",
                params={"session_id": chat.session_id},
                files={"file": ("x" * 600 + ".md", SECRET_NOTE.encode(), "text/markdown")},
            )
        assert response.status_code == 200, response.text
        reply = await chat.send_step("", references=[{"id": response.json()["id"]}])
    shown = " ".join(str(m.get("output") or "") for m in reply.messages)
    for leak in (
        "StringDataRightTruncation",
        "INSERT INTO",
        "Traceback",
        "sqlalchemy",
        ".files",
        "/tmp",
    ):
        assert leak not in shown, shown
    assert shown.strip()
