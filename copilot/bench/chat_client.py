"""A small client for our own chat, speaking Chainlit's HTTP and socket.io protocol.

The tests and `copilot bench chat` drive the real app through it exactly as the browser
does: sign in with the password form (the access token comes back as a cookie), open a
socket.io connection that authenticates with that cookie, send `client_message` and read
the streamed answer until `task_end`. It covers what we use and nothing more; it is not
a general Chainlit SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio

CHAT_PATH = "/chat"
AUTH_COOKIE = "access_token"  # Chainlit's default; a long token comes as access_token_0, _1...

Step = dict[str, Any]


class SignInRefused(Exception):
    """The chat refused the email and password (HTTP 401)."""


@dataclass(frozen=True)
class Credentials:
    """What a sign-in returns: the signed token and the cookies carrying it."""

    email: str
    token: str
    cookies: dict[str, str]

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


async def sign_in(
    base_url: str, email: str, password: str, *, chat_path: str = CHAT_PATH
) -> Credentials:
    """Sign in through Chainlit's password form, as the login page does."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(
            f"{chat_path}/login", data={"username": email, "password": password}
        )
    if response.status_code == 401:
        raise SignInRefused(f"{email}: {response.json().get('detail', 'refused')}")
    response.raise_for_status()
    cookies = {
        name: value for name, value in response.cookies.items() if name.startswith(AUTH_COOKIE)
    }
    token = cookies.get(AUTH_COOKIE) or "".join(
        cookies[f"{AUTH_COOKIE}_{i}"] for i in range(len(cookies))
    )
    if not token:
        raise SignInRefused(f"{email}: the sign-in answered without an access token")
    return Credentials(email, token, cookies)


def http_client(base_url: str, credentials: Credentials) -> httpx.AsyncClient:
    """An HTTP client signed in as `credentials` (for Chainlit's /project/... endpoints)."""
    return httpx.AsyncClient(base_url=base_url, cookies=credentials.cookies, timeout=30)


@dataclass
class Reply:
    """Everything the server sent for one question, from `client_message` to `task_end`."""

    text: str  # the last assistant message's final text
    tokens: list[str]  # streamed tokens in order (the first one arrives with stream_start)
    time_to_first_token: float | None  # seconds; None when nothing was streamed
    duration: float  # seconds until task_end
    messages: list[Step]  # final state of every message or step shown, in order of appearance
    elements: list[dict[str, Any]]
    question_id: str
    # Per element, in the same order: how many tokens had been streamed when it arrived.
    element_frames: list[int] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def token_count(self) -> int:
        return len(self.tokens)

    @property
    def answer(self) -> Step | None:
        """The last assistant message (the answer, or a refusal or error notice)."""
        shown = [m for m in self.messages if m.get("type") == "assistant_message"]
        return shown[-1] if shown else None


@dataclass
class _Collector:
    """Events of the question in flight."""

    sent_at: float
    started: bool = False  # its task_start arrived: the next return to idle ends it
    first_token_at: float | None = None
    tokens: list[str] = field(default_factory=list)
    messages: dict[str, Step] = field(default_factory=dict)
    elements: list[dict[str, Any]] = field(default_factory=list)
    element_frames: list[int] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Step] = field(default_factory=list)  # messages sent whole (not streamed)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ChatSession:
    """One browser tab: a socket.io connection to the chat, optionally resuming a thread.

    Use as `async with ChatSession(url, credentials) as chat: reply = await chat.ask(...)`.
    One question at a time, as in the UI.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        thread_id: str | None = None,
        chat_path: str = CHAT_PATH,
        timeout: float = 60.0,
        chat_profile: str = "",
        page: str = "",
    ) -> None:
        """`page`: the address (path) of the page this tab is at, sent as its Referer, as a
        browser sends it; a chat's address (<chat>/thread/<id>) resumes that chat."""
        self.base_url = base_url.rstrip("/")
        self.page = page
        self.chat_profile = chat_profile
        self.credentials = credentials
        self.chat_path = chat_path
        self.timeout = timeout
        self.session_id = str(uuid.uuid4())
        self.thread_id: str | None = thread_id
        self.resumed_thread: dict[str, Any] | None = None  # the history sent on resume
        self.resume_error: str | None = None
        self.restored_actions: list[dict[str, Any]] = []  # sent on resume (Regenerate)
        self._resume_requested = thread_id is not None or "/thread/" in page
        self._sio = socketio.AsyncClient(reconnection=False)
        self._collector: _Collector | None = None
        self._tasks_running = 0  # task_start minus task_end: 0 when the server is idle
        self._chat_ready = asyncio.Event()
        self._resume_done = asyncio.Event()
        # Every message the server sent, asked for or not, as last updated (an upload's
        # progress message changes until it is done).
        self.shown: dict[str, Step] = {}
        self._register_handlers()

    async def __aenter__(self) -> ChatSession:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect with the sign-in cookie; on resume, wait until the history is restored."""
        await self._sio.connect(
            self.base_url,
            headers={
                "Cookie": self.credentials.cookie_header,
                **({"Referer": self.base_url + self.page} if self.page else {}),
            },
            auth={
                "sessionId": self.session_id,
                "clientType": "webapp",
                "threadId": self.thread_id or "",
                "userEnv": json.dumps({}),
                "chatProfile": self.chat_profile,
            },
            transports=["websocket"],
            socketio_path=f"{self.chat_path}/ws/socket.io",
            wait_timeout=self.timeout,
        )
        await self._sio.emit("connection_successful")
        # The server then runs on_chat_start (or on_chat_resume, then sends the thread) as a
        # task between task_start and task_end: wait for it, or its events would be taken
        # for part of the first answer.
        await asyncio.wait_for(self._chat_ready.wait(), self.timeout)
        if self._resume_requested:
            await asyncio.wait_for(self._resume_done.wait(), self.timeout)

    async def close(self) -> None:
        """Disconnect, asking the server to drop the session (and its files) now rather
        than an hour later; the acknowledgement makes sure it knew before we left."""
        if self._sio.connected:
            with contextlib.suppress(socketio.exceptions.TimeoutError):
                await self._sio.call("clear_session", timeout=self.timeout)
            await self._sio.disconnect()

    async def upload(self, path: Path, mime: str | None = None) -> dict[str, Any]:
        """Upload a file the way the paperclip does; returns the file reference ({"id"})."""
        mime = mime or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        async with http_client(self.base_url, self.credentials) as http:
            response = await http.post(
                f"{self.chat_path}/project/file",
                params={"session_id": self.session_id},
                files={"file": (path.name, path.read_bytes(), mime)},
            )
        response.raise_for_status()
        reference: dict[str, Any] = response.json()
        return reference

    async def ask(self, text: str, files: Sequence[Path] | None = None) -> Reply:
        """Send a message (uploading `files` first) and collect the reply until task_end."""
        if self._collector is not None:
            raise RuntimeError("one question at a time")
        references = [{"id": (await self.upload(path))["id"]} for path in files or ()]
        question: Step = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": self.credentials.email,
            "type": "user_message",
            "output": text,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "metadata": {},
        }
        collector = _Collector(sent_at=time.perf_counter())
        self._collector = collector
        try:
            await self._sio.emit(
                "client_message", {"message": question, "fileReferences": references}
            )
            await asyncio.wait_for(collector.done.wait(), self.timeout)
        finally:
            self._collector = None
        return self._reply(collector, question["id"])

    async def act(self, action: dict[str, Any]) -> Reply:
        """Click an action (as sent with a message) and collect what its callback sent.

        Chainlit runs an action's callback within the HTTP request; the reply is complete
        once the request has returned and the message the callback sent last (an answer's
        final text) has arrived over the socket."""
        if self._collector is not None:
            raise RuntimeError("one question at a time")
        collector = _Collector(sent_at=time.perf_counter())
        self._collector = collector
        try:
            async with http_client(self.base_url, self.credentials) as http:
                response = await http.post(
                    f"{self.chat_path}/project/action",
                    json={"sessionId": self.session_id, "action": action},
                    timeout=self.timeout,
                )
            response.raise_for_status()
            deadline = time.monotonic() + self.timeout
            while not any(m.get("type") == "assistant_message" for m in collector.sent):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"action {action.get('name')} sent no message")
                await asyncio.sleep(0.02)
        finally:
            self._collector = None
        return self._reply(collector, "")

    def _reply(self, collector: _Collector, question_id: str) -> Reply:
        answers = [m for m in collector.messages.values() if m.get("type") == "assistant_message"]
        return Reply(
            text=str(answers[-1].get("output") or "") if answers else "".join(collector.tokens),
            tokens=collector.tokens,
            time_to_first_token=(
                collector.first_token_at - collector.sent_at
                if collector.first_token_at is not None
                else None
            ),
            duration=time.perf_counter() - collector.sent_at,
            messages=list(collector.messages.values()),
            elements=collector.elements,
            question_id=question_id,
            element_frames=collector.element_frames,
            actions=collector.actions,
        )

    async def until_shown(self, text: str, timeout: float | None = None) -> Step:
        """The first message shown whose text contains `text`, waiting for it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for step in self.shown.values():
                if text in str(step.get("output") or ""):
                    return step
            if time.monotonic() > deadline:
                raise TimeoutError(f"never shown {text!r}: {list(self.shown.values())}")
            await asyncio.sleep(0.05)

    # --- Server events ----------------------------------------------------------------------

    def _register_handlers(self) -> None:
        on = self._sio.on
        on("task_start", self._on_task_start)
        on("task_end", self._on_task_end)
        on("stream_start", self._on_stream_start)
        on("stream_token", self._on_stream_token)
        on("new_message", self._on_message)
        on("update_message", self._on_message)
        on("element", self._on_element)
        on("action", self._on_action)
        on("first_interaction", self._on_first_interaction)
        on("resume_thread", self._on_resume_thread)
        on("resume_thread_error", self._on_resume_error)

    async def _on_task_start(self, _: Any) -> None:
        self._tasks_running += 1
        if self._collector is not None:
            self._collector.started = True

    async def _on_task_end(self, _: Any) -> None:
        # Tasks nest (a question's task wraps the handler's); the handshake also sends a
        # lone task_end, which must not count.
        if self._tasks_running == 0:
            return
        self._tasks_running -= 1
        if self._tasks_running > 0:
            return
        if self._collector is not None and self._collector.started:
            self._collector.done.set()
        elif self._collector is None:
            self._chat_ready.set()

    async def _on_stream_start(self, step: Step) -> None:
        if (collector := self._collector) is None:
            return
        collector.first_token_at = collector.first_token_at or time.perf_counter()
        if step.get("output"):
            collector.tokens.append(str(step["output"]))
        collector.messages[step["id"]] = step

    async def _on_stream_token(self, token: dict[str, Any]) -> None:
        if (collector := self._collector) is None:
            return
        collector.tokens.append(str(token["token"]))
        if (streamed := collector.messages.get(token["id"])) is not None:
            if token.get("isSequence"):
                streamed["output"] = token["token"]
            else:
                streamed["output"] = str(streamed.get("output") or "") + token["token"]

    async def _on_message(self, step: Step) -> None:
        self.shown[str(step.get("id"))] = step
        if self._collector is not None:
            self._collector.messages[step["id"]] = step
            self._collector.sent.append(step)
        if step.get("threadId"):
            self.thread_id = self.thread_id or str(step["threadId"])

    async def _on_element(self, element: dict[str, Any]) -> None:
        if self._collector is not None:
            self._collector.elements.append(element)
            self._collector.element_frames.append(len(self._collector.tokens))

    async def _on_action(self, action: dict[str, Any]) -> None:
        if self._collector is not None:
            self._collector.actions.append(action)
        elif self._resume_requested:
            self.restored_actions.append(action)

    async def _on_first_interaction(self, event: dict[str, Any]) -> None:
        if event.get("thread_id"):
            self.thread_id = str(event["thread_id"])

    async def _on_resume_thread(self, thread: dict[str, Any]) -> None:
        self.resumed_thread = thread
        self._resume_done.set()

    async def _on_resume_error(self, error: str) -> None:
        self.resume_error = error
        self._resume_done.set()
