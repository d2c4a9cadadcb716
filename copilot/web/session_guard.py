"""Every request to the chat must come from a sign-in that still stands.

Chainlit trusts its signed token for as long as it lives (days). Logout and
`copilot users deactivate` revoke the Redis session behind it; this middleware turns a
revoked or deactivated sign-in away on every HTTP request and socket connection under
/chat/, so old cookies cannot read, rename or resume chats. So is a token without a
session, and any token while Redis is unreachable (the session cannot be checked).
"""

from __future__ import annotations

from chainlit.auth.cookie import get_token_from_cookies
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from copilot.web.auth import SignedOut, principal_from_token

# Signing in and out, and the static parts of the page, need no standing sign-in.
OPEN_PATHS = (
    "login",
    "logout",
    "auth/",
    "assets/",
    "public/",
    "favicon",
    "logo",
    "project/translations",
)


def request_token(connection: HTTPConnection) -> str | None:
    token = get_token_from_cookies(dict(connection.cookies))
    if token:
        return token
    authorization = connection.headers.get("authorization", "")
    return authorization.removeprefix("Bearer ").strip() or None


class SessionGuard:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if path[len(self.prefix) :].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        token = request_token(HTTPConnection(scope))
        if token is not None:
            try:
                await principal_from_token(token)
            except SignedOut as reason:
                await _refuse(scope, receive, send, str(reason))
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4401, "reason": reason})
        return
    response = JSONResponse({"detail": f"sign in again: {reason}"}, status_code=401)
    await response(scope, receive, send)
