"""Checks Chainlit's own routes and socket do not make, in front of them.

Chainlit's HTTP routes trust any signed-in user with any message, feedback row or session
id, and its socket accepts a chat id nobody open owns (a deleted chat). `ChatRouteGuard`
is an ASGI middleware on Chainlit's app that answers those requests itself, with a clear
4xx, before Chainlit would accept them or fail with a 500:

- feedback (PUT/DELETE /feedback): only the chat's owner; an unknown id is a 404,
- a shared chat (GET /project/share/...): only for a standing sign-in (Chainlit itself
  accepts any validly signed token, even of a session that was revoked), and the data
  layer is told who reads it, so it answers with the shared view or nothing,
- actions and element changes for a session that does not exist: a 404,
- uploads (POST /project/file): need `documents.upload`, count against the user's rate
  limit like a message, and a 0-byte file is taken in (Chainlit would fail on it) so the
  chat can say it is empty.

It also tells the data layer who the request's user is (`data_layer.request_user`).
`guard_socket` wraps Chainlit's socket.io handlers: on connect, a chat id that exists and
belongs to someone else is refused, deleted or not, one's own deleted chat gets a new chat
id, so nothing is written into a deleted chat, and a socket opened from a chat's address
resumes that chat even when it names none (`chat_of_page`); what the browser sends is a
user message without metadata (Chainlit takes its type and metadata from the browser, so
it could send "assistant" answers), and only the user's own questions can be edited.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chainlit.auth import get_token_from_cookies
from starlette.requests import HTTPConnection, Request, cookie_parser
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.users import Principal
from copilot.web import data_layer as chat_data
from copilot.web.auth import SignedOut, principal_from_token
from copilot.web.runtime import current
from copilot.web.session_guard import request_token

log = logging.getLogger(__name__)

UPLOAD_PERMISSION = "documents.upload"
#: Request bodies checked here (feedback, actions) are small: only their first MiB is read,
#: so a larger one does not parse and is refused.
MAX_CHECKED_BODY = 1 << 20
#: An upload body at most this long may hold an empty file: only such bodies are parsed.
SMALL_UPLOAD_BODY = 64 << 10

Check = Callable[[Scope, Receive, Send, Principal], Awaitable[Receive | None]]


class ChatRouteGuard:
    """ASGI middleware on Chainlit's app: refuses what its routes would wrongly accept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = (scope["method"], _route_path(scope))
        if route[0] == "GET" and route[1].startswith(SHARED_VIEW_PREFIX):
            route = (route[0], SHARED_VIEW_PREFIX)
        check = _CHECKS.get(route)
        if check is None:
            await self.app(scope, receive, send)
            return
        principal = await _principal(scope)
        if principal is None and route in SIGNED_IN_ONLY:
            await _refuse(scope, receive, send, 401, "Sign in to read a shared chat.")
            return
        reset = chat_data.request_user.set(principal.email if principal else None)
        try:
            if principal is not None:  # else Chainlit answers 401
                # A check answers the request itself (None) or passes the body on.
                checked = await check(scope, receive, send, principal)
                if checked is None:
                    return
                receive = checked
            await self.app(scope, receive, send)
        finally:
            chat_data.request_user.reset(reset)


async def _check_feedback(
    scope: Scope, receive: Receive, send: Send, principal: Principal
) -> Receive | None:
    body, receive = await _read_body(receive)
    feedback = _json(body).get("feedback")
    for_id = str(feedback.get("forId") or "") if isinstance(feedback, dict) else ""
    owner = await current_data_layer().rated_chat_owner(for_id)
    if owner is None:
        await _refuse(
            scope,
            receive,
            send,
            404,
            f"There is no answer with id {for_id[:64]!r} to rate (or its chat was deleted).",
        )
        return None
    if owner != principal.email:
        await _refuse(scope, receive, send, 403, "Only the chat's owner may rate its answers.")
        return None
    return receive


async def _check_feedback_removal(
    scope: Scope, receive: Receive, send: Send, principal: Principal
) -> Receive | None:
    body, receive = await _read_body(receive)
    feedback_id = str(_json(body).get("feedbackId") or "")
    owner = await current_data_layer().feedback_owner(feedback_id)
    if owner is None:
        await _refuse(scope, receive, send, 404, f"There is no feedback {feedback_id[:64]!r}.")
        return None
    if owner != principal.email:
        await _refuse(scope, receive, send, 403, "Only the chat's owner may remove feedback on it.")
        return None
    return receive


async def _check_session(
    scope: Scope, receive: Receive, send: Send, principal: Principal
) -> Receive | None:
    from chainlit.session import WebsocketSession

    body, receive = await _read_body(receive)
    if WebsocketSession.get_by_id(str(_json(body).get("sessionId") or "")) is None:
        await _refuse(
            scope,
            receive,
            send,
            404,
            "This chat session has ended or does not exist; reload the page and try again.",
        )
        return None
    return receive


async def _check_upload(
    scope: Scope, receive: Receive, send: Send, principal: Principal
) -> Receive | None:
    from chainlit.session import WebsocketSession

    session_id = Request(scope).query_params.get("session_id", "")
    session = WebsocketSession.get_by_id(session_id)
    if session is None or session.user is None or session.user.identifier != principal.email:
        return receive  # Chainlit refuses it (404 / 401)
    if not principal.can(UPLOAD_PERMISSION):
        refusal = (
            f"Uploading files needs the {UPLOAD_PERMISSION} permission, which your role "
            "does not have."
        )
        await _tell(session, refusal)
        await _refuse(scope, receive, send, 403, refusal)
        return None
    runtime = current()
    decision = await runtime.limiter.check_and_record(principal.user_id, principal.roles)
    if not decision.allowed:
        wait = max(1, round(decision.retry_after_seconds or 0))
        refusal = (
            f"You have reached your limit of {decision.reason} (each upload counts as a "
            f"message); please try again in {wait} seconds."
        )
        await _tell(session, refusal)
        await _refuse(scope, receive, send, 429, refusal, headers={"Retry-After": str(wait)})
        return None
    head, receive = await _read_body(receive, limit=SMALL_UPLOAD_BODY)
    if len(head) >= SMALL_UPLOAD_BODY:
        return receive
    form = await Request(scope, _replay(head, receive)).form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or upload.size != 0:
        return receive
    # Chainlit cannot keep a 0-byte file; taken in here, the chat then says it is empty.
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty"
        empty.touch()
        reference = await session.persist_file(
            name=upload.filename or "file",
            mime=upload.content_type or "application/octet-stream",
            path=str(empty),
        )
    await JSONResponse(dict(reference))(scope, receive, send)
    return None


async def _reader_told(
    scope: Scope, receive: Receive, send: Send, principal: Principal
) -> Receive | None:
    """Nothing to refuse here: the data layer, told who asks, decides what they read."""
    return receive


SHARED_VIEW_PREFIX = "/project/share/"
SIGNED_IN_ONLY = {("GET", SHARED_VIEW_PREFIX), ("PUT", "/project/thread/share")}

_CHECKS: dict[tuple[str, str], Check] = {
    ("GET", SHARED_VIEW_PREFIX): _reader_told,
    ("PUT", "/project/thread/share"): _reader_told,
    ("PUT", "/feedback"): _check_feedback,
    ("DELETE", "/feedback"): _check_feedback_removal,
    ("POST", "/project/action"): _check_session,
    ("PUT", "/project/element"): _check_session,
    ("DELETE", "/project/element"): _check_session,
    ("POST", "/project/file"): _check_upload,
}


async def _tell(session: Any, text: str) -> None:
    """Say `text` in the chat of the (verified) user's session, beside the HTTP answer."""
    from chainlit.context import init_ws_context
    from chainlit.message import Message as ChainlitMessage

    try:
        init_ws_context(session)
        await ChainlitMessage(content=text).send()
    except Exception:  # the HTTP refusal stands on its own
        log.warning("could not tell session %s: %s", session.id, text, exc_info=True)


def current_data_layer() -> chat_data.CopilotDataLayer:
    return chat_data.CopilotDataLayer(current().sessions)


# --- The socket ----------------------------------------------------------------------------


SocketHandler = Callable[..., Awaitable[Any]]


def guard_socket(sio: Any) -> None:
    """Register checking handlers in front of the ones registered now (Chainlit's).

    Each runs the handler it replaced, so other wrappers registered before or after this
    one compose with it.
    """
    registered: dict[str, SocketHandler] = sio.handlers["/"]
    connect = registered["connect"]
    client_message = registered["client_message"]
    edit_message = registered["edit_message"]

    async def guarded_connect(sid: str, environ: dict[str, Any], auth: dict[str, Any]) -> Any:
        thread_id = str((auth or {}).get("threadId") or "") or chat_of_page(environ)
        if thread_id:
            auth = {**(auth or {}), "threadId": await _open_chat_id(environ, thread_id)}
        return await connect(sid, environ, auth)

    async def guarded_message(sid: str, payload: dict[str, Any]) -> Any:
        return await client_message(sid, _as_user_message(payload))

    async def guarded_edit(sid: str, payload: dict[str, Any]) -> Any:
        if not _edits_own_question(sid, payload):
            log.warning("socket %s: refused an edit of a message that is not a question", sid)
            return None
        return await edit_message(sid, _as_user_message(payload))

    sio.on("connect")(guarded_connect)
    sio.on("client_message")(guarded_message)
    sio.on("edit_message")(guarded_edit)


def chat_of_page(environ: dict[str, Any]) -> str:
    """The chat whose address (<chat>/thread/<id>) the socket's page is at, or "".

    Chainlit's page connects twice when it opens at a chat's address: once before it has
    read the chat id from the address (no id) and once after, and keeps whichever socket
    it opened last. The two wait on a cookie request first, so on busy cores the one
    without the id can come last: the page then sits at the chat's address with a new,
    empty chat and nothing resumed (or, for a colleague, no refusal to move on from). A
    page at a chat's address always means that chat, so the socket resumes it, with every
    check an id sent by the page gets. The address comes from the Referer header, which
    browsers send in full to the page's own origin; a client that forges it could as well
    have sent the id itself.
    """
    path = urlsplit(str(environ.get("HTTP_REFERER") or "")).path.rstrip("/")
    head, _, chat_id = path.rpartition("/")
    if not head.endswith("/thread"):
        return ""
    try:
        return str(uuid.UUID(chat_id))
    except ValueError:
        return ""


def _as_user_message(payload: dict[str, Any]) -> dict[str, Any]:
    step = dict((payload or {}).get("message") or {})
    step["type"] = "user_message"
    step["metadata"] = {}
    return {**payload, "message": step}


def _edits_own_question(sid: str, payload: dict[str, Any]) -> bool:
    """Whether the edited message is one of the user's questions in this session's chat."""
    from chainlit.chat_context import chat_contexts
    from chainlit.session import WebsocketSession

    session = WebsocketSession.get(sid)
    message_id = ((payload or {}).get("message") or {}).get("id")
    shown = chat_contexts.get(session.id, []) if session is not None else []
    return any(m.id == message_id and m.type == "user_message" for m in shown)


async def _open_chat_id(environ: dict[str, Any], thread_id: str) -> str:
    """The chat id this socket may use; raises ConnectionRefusedError for someone else's."""
    owner = await current_data_layer().chat_owner(thread_id)
    if owner is None:
        return thread_id
    owner_email, deleted = owner
    principal = await _socket_principal(environ)
    if principal is None:
        return thread_id  # Chainlit refuses an unauthenticated socket itself
    if owner_email != principal.email:
        log.warning("socket: %s asked for chat %s of another user", principal.email, thread_id)
        raise ConnectionRefusedError("authorization failed")
    if deleted:
        return str(uuid.uuid4())  # a new chat: nothing lands in the deleted one
    return thread_id


async def _socket_principal(environ: dict[str, Any]) -> Principal | None:
    cookie = environ.get("HTTP_COOKIE")
    token = get_token_from_cookies(cookie_parser(cookie)) if cookie else None
    if not token:
        return None
    try:
        return await principal_from_token(token)
    except SignedOut:
        return None


# --- Small ASGI helpers ------------------------------------------------------------------------


def _route_path(scope: Scope) -> str:
    """The path inside Chainlit's app (it is mounted under /chat)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _principal(scope: Scope) -> Principal | None:
    token = request_token(HTTPConnection(scope))
    if token is None:
        return None
    try:
        return await principal_from_token(token)
    except SignedOut:
        return None


async def _read_body(receive: Receive, limit: int = MAX_CHECKED_BODY) -> tuple[bytes, Receive]:
    """Up to `limit` bytes of the body, and a receive that replays them, then the rest."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size < limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    head = b"".join(chunks)
    return head, _replay(head, receive, more_body=more)


def _replay(head: bytes, receive: Receive, *, more_body: bool = False) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": head, "more_body": more_body}
        return await receive()

    return replay


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    response: Response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)
