"""A chat's own address, sharing and export (issue 12 points 2 and 4), under attack.

The owner resumes their chat with its answers in their runs (copy and thumbs buttons, the
earlier rating); a colleague reads it only once it is shared, read-only, and without any
answer drawn from a file they may not read; nobody signed out reads anything; only the
owner exports. Driven over HTTP and socket.io against the real app, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio.exceptions

from copilot.bench.chat_client import ChatSession, http_client
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.review.clearance import NOT_READABLE
from copilot.web.data_layer import CopilotDataLayer
from tests.security._chat_support import account
from tests.web.test_chat import (
    HOTEL_ANSWER,
    HOTEL_QUESTION,
    SECRET_NOTE,
    SECRET_QUESTION,
    Account,
    LiveChat,
    answer_of,
    live,
    scripted,
    stored_message,
)

__all__ = ["live"]  # the fixture, imported so this module gets its own app

SECRET_ANSWER = "The Heron launch partner is Bluefinch Logistics [1]."


async def _asked(live: LiveChat, owner: Account, question: str) -> tuple[str, dict[str, Any]]:
    """Ask as `owner` in a new chat: (chat id, the answer step as the live chat sent it)."""
    async with ChatSession(live.url, owner.credentials) as chat:
        reply = await chat.ask(question)
        thread_id = chat.thread_id
    assert thread_id is not None
    answer = answer_of(reply)
    await stored_message(live, answer["id"], model="fake-chat")
    return thread_id, answer


async def _share(owner: Account, live: LiveChat, thread_id: str, shared: bool = True) -> None:
    async with http_client(live.url, owner.credentials) as http:
        response = await http.put(
            "/chat/project/thread/share", json={"threadId": thread_id, "isShared": shared}
        )
    assert response.status_code == 200, response.text


def _rating(for_id: str, thread_id: str, value: int) -> dict[str, Any]:
    return {
        "feedback": {"forId": for_id, "threadId": thread_id, "value": value, "comment": "Good"},
        "sessionId": str(uuid.uuid4()),
    }


async def test_a_resumed_chat_has_its_runs_buttons_and_earlier_rating(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    owner = await account(live, "olga")
    thread_id, answer = await _asked(live, owner, HOTEL_QUESTION)
    run_id = answer["parentId"]  # the live chat rates the run, as the thumbs do
    async with http_client(live.url, owner.credentials) as http:
        rated = await http.put("/chat/feedback", json=_rating(run_id, thread_id, 1))
        assert rated.status_code == 200, rated.text
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()

    question, run, resumed = thread["steps"]
    assert question["type"] == "user_message" and question["output"] == HOTEL_QUESTION
    # As live: the run under the question, the answer under the run, the rating on the run.
    assert (run["type"], run["name"], run["id"]) == ("run", "on_message", run_id)
    assert run["parentId"] == question["id"]
    assert run["feedback"]["value"] == 1 and run["feedback"]["forId"] == run_id
    assert resumed["id"] == answer["id"] and resumed["parentId"] == run_id
    assert {e["forId"] for e in thread["elements"]} == {answer["id"]}  # chip and marker

    # Resuming over the socket sends the same, and the thumbs change the same rating.
    async with ChatSession(live.url, owner.credentials, thread_id=thread_id) as chat:
        assert chat.resumed_thread is not None
        assert [s["type"] for s in chat.resumed_thread["steps"]] == [
            "user_message",
            "run",
            "assistant_message",
        ]
    async with http_client(live.url, owner.credentials) as http:
        changed = await http.put("/chat/feedback", json=_rating(run_id, thread_id, 0))
        assert changed.status_code == 200, changed.text
        thread = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    assert thread["steps"][1]["feedback"]["value"] == 0


async def test_a_colleague_reads_a_chat_only_once_it_is_shared_and_only_reads(
    live: LiveChat,
) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    owner = await account(live, "paula")
    colleague = await account(live, "quentin")
    thread_id, answer = await _asked(live, owner, HOTEL_QUESTION)

    async with http_client(live.url, colleague.credentials) as http:
        before = await http.get(f"/chat/project/share/{thread_id}")
    assert before.status_code == 404  # not shared: as if it did not exist

    await _share(owner, live, thread_id)
    async with http_client(live.url, colleague.credentials) as http:
        shared = await http.get(f"/chat/project/share/{thread_id}")
        resume = await http.get(f"/chat/project/thread/{thread_id}")
        unshare = await http.put(
            "/chat/project/thread/share", json={"threadId": thread_id, "isShared": False}
        )
        rate = await http.put("/chat/feedback", json=_rating(answer["parentId"], thread_id, 0))
        rename = await http.put("/chat/project/thread", json={"threadId": thread_id, "name": "x"})
    assert shared.status_code == 200, shared.text
    view = shared.json()
    assert [s["type"] for s in view["steps"]] == ["user_message", "assistant_message"]
    assert "180 euros" in view["steps"][1]["output"]  # a company file the colleague may read
    assert all("feedback" not in s for s in view["steps"])  # the owner's ratings are theirs
    chips = [e["props"]["label"] for e in view["elements"] if e["name"] == "CitedSource"]
    assert chips == ["[1] handbook.md, Travel policy"]
    # Read-only: no resume, no sharing, rating or renaming of someone else's chat.
    assert resume.status_code == 401 and unshare.status_code == 401
    assert rate.status_code == 403 and rename.status_code == 401
    with pytest.raises(socketio.exceptions.ConnectionError):
        await ChatSession(live.url, colleague.credentials, thread_id=thread_id).connect()

    # The owner still sees it whole, and un-sharing closes it again.
    async with http_client(live.url, owner.credentials) as http:
        own = (await http.get(f"/chat/project/thread/{thread_id}")).json()
    assert own["metadata"]["is_shared"] is True and len(own["steps"]) == 3
    await _share(owner, live, thread_id, shared=False)
    async with http_client(live.url, colleague.credentials) as http:
        after = await http.get(f"/chat/project/share/{thread_id}")
    assert after.status_code == 404


async def test_a_shared_chat_hides_answers_drawn_from_files_the_colleague_may_not_read(
    live: LiveChat, tmp_path: Path
) -> None:
    owner = await account(live, "rita")
    colleague = await account(live, "sam")
    note = tmp_path / "heron.md"
    note.write_text(SECRET_NOTE)
    personal = Ownership(uuid.UUID(owner.principal.user_id))
    result = await ingest_file(live.runtime.kb, note, personal)
    assert result.outcome == "indexed", result.summary
    live.answer_with(scripted(SECRET_ANSWER))
    thread_id, _ = await _asked(live, owner, SECRET_QUESTION)
    await _share(owner, live, thread_id)

    async with http_client(live.url, owner.credentials) as http:
        own = await http.get(f"/chat/project/share/{thread_id}")
    assert "Bluefinch" in own.text  # the owner reads their own file
    async with http_client(live.url, colleague.credentials) as http:
        shared = await http.get(f"/chat/project/share/{thread_id}")
        element = await http.get(f"/chat/project/thread/{thread_id}/element/{uuid.uuid4()}")
    assert shared.status_code == 200, shared.text
    view = shared.json()
    assert view["steps"][0]["output"] == SECRET_QUESTION  # the question is the owner's words
    assert view["steps"][1]["output"] == NOT_READABLE
    assert view["elements"] == []
    assert "Bluefinch" not in shared.text and "Heron launch budget" not in shared.text
    assert "heron.md" not in shared.text  # not even the file's name
    assert element.status_code == 401


async def test_signed_out_or_revoked_nobody_reads_a_shared_chat(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    owner = await account(live, "tess")
    thread_id, _ = await _asked(live, owner, HOTEL_QUESTION)
    await _share(owner, live, thread_id)
    async with httpx.AsyncClient(base_url=live.url) as anonymous:
        shared = await anonymous.get(f"/chat/project/share/{thread_id}")
        export = await anonymous.get(f"/chats/{thread_id}/export.md")
    assert shared.status_code == 401 and export.status_code == 401
    assert "180 euros" not in shared.text + export.text

    # A signed token whose session was revoked (signed out elsewhere) reads nothing either.
    revoked = await account(live, "ursula")
    async with http_client(live.url, revoked.credentials) as http:
        assert (await http.post("/chat/logout")).status_code == 200
    async with http_client(live.url, revoked.credentials) as http:  # the same token again
        after_logout = await http.get(f"/chat/project/share/{thread_id}")
    assert after_logout.status_code == 401, after_logout.text


async def test_only_the_owner_exports_a_chat_with_its_citations(live: LiveChat) -> None:
    live.answer_with(scripted(HOTEL_ANSWER))
    owner = await account(live, "vera")
    colleague = await account(live, "walt")
    thread_id, answer = await _asked(live, owner, HOTEL_QUESTION)
    await _share(owner, live, thread_id)  # shared or not, an export is the owner's
    async with http_client(live.url, owner.credentials) as http:
        await http.put("/chat/feedback", json=_rating(answer["parentId"], thread_id, 1))
        markdown = await http.get(f"/chats/{thread_id}/export.md")
        exported = await http.get(f"/chats/{thread_id}/export.json")
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"].startswith("attachment;")
    text = markdown.text
    assert "## You" in text and HOTEL_QUESTION in text and "180 euros" in text
    assert "1. handbook.md, Travel policy" in text and "> " in text  # the cited passage
    assert "Rated up: Good" in text
    assert "**Sources:**" not in text  # the chat's links are replaced by the list

    record = exported.json()
    assert record["id"] == thread_id
    question, reply = record["messages"]
    assert (question["role"], question["content"]) == ("user", HOTEL_QUESTION)
    assert reply["content"] == HOTEL_ANSWER
    [cited] = reply["citations"]
    assert cited["number"] == 1 and cited["file"] == "handbook.md"
    assert cited["place"] == "Travel policy" and "180 euros" in cited["snippet"]
    assert reply["feedback"] == {"value": "up", "comment": "Good"}

    async with http_client(live.url, colleague.credentials) as http:
        theirs = await http.get(f"/chats/{thread_id}/export.json")
        unknown = await http.get(f"/chats/{uuid.uuid4()}/export.json")
    assert theirs.status_code == 404 and unknown.status_code == 404
    assert "180 euros" not in theirs.text

    await CopilotDataLayer(live.runtime.sessions).delete_thread(thread_id)
    async with http_client(live.url, owner.credentials) as http:
        deleted = await http.get(f"/chats/{thread_id}/export.md")
        json_of_deleted = await http.get(f"/chats/{thread_id}/export.json")
    assert deleted.status_code == 404 and json_of_deleted.status_code == 404
    assert json.loads(json_of_deleted.text)["detail"] == "no such chat"


async def test_the_share_dialogs_link_reaches_the_shared_view(live: LiveChat) -> None:
    """Chainlit's dialog links <origin>/share/<id>, without the /chat it is mounted under."""
    chat_id = uuid.uuid4()
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.get(f"/share/{chat_id}")
        wrong = await client.get("/share/not-an-id")
    assert response.status_code == 307
    assert response.headers["location"] == f"/chat/share/{chat_id}"
    assert wrong.status_code == 422
