"""Only the app's own pages may use the chat from a browser.

Browsers send cookies with requests from any page of the same *site*, and another port of
the same host is the same site: without this, a page at http://127.0.0.1:OTHERPORT could
list a signed-in user's chats and open the chat socket as them. Browsers always send
`Origin` on cross-origin requests and on websocket handshakes, so a request under /chat
whose Origin is not ours is refused before Chainlit sees it (HTTP 403; the handshake is
closed). Requests without an Origin (same-origin navigations, scripts, our own test
client) carry no browser ambient authority from another page and pass.

Our origins are COPILOT_PUBLIC_URL plus COPILOT_ALLOWED_ORIGINS; with neither set, the
origin the request was addressed to (its Host header), so that the app works on whatever
address and port it is served without configuration. Chainlit's CORS list is empty
(.chainlit/config.toml) and its socket.io server asks `OriginPolicy.engineio_allows` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from copilot.settings import Settings

# OAuth providers post back to this path from their own origin (Azure AD's form_post).
EXEMPT_PATHS = ("auth/oauth/",)


def normalized_origin(url: str) -> str:
    """scheme://host[:port] in lower case; '' for anything that is not an http(s) origin."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


class OriginPolicy:
    def __init__(self, origins: Iterable[str] = ()) -> None:
        self.origins = frozenset(origins)

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        configured = [u for u in (settings.public_url, *settings.allowed_origins) if u.strip()]
        origins = []
        for url in configured:
            origin = normalized_origin(url)
            if not origin:
                raise ValueError(
                    f"COPILOT_PUBLIC_URL / COPILOT_ALLOWED_ORIGINS: {url!r} is not an http(s) URL"
                )
            origins.append(origin)
        return cls(origins)

    def allows(self, origin: str, host: str) -> bool:
        wanted = normalized_origin(origin)  # 'null' and other opaque origins: ''
        if not wanted:
            return False
        if self.origins:
            return wanted in self.origins
        return bool(host) and urlsplit(wanted).netloc == host.strip().lower()

    def engineio_allows(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        """python-engineio's `cors_allowed_origins` callable."""
        if not origin:
            return True
        return self.allows(origin, str(environ.get("HTTP_HOST", "")))


class OriginGuard:
    def __init__(self, app: ASGIApp, prefix: str, policy: OriginPolicy) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] in ("http", "websocket")
            and path.startswith(self.prefix)
            and not path[len(self.prefix) :].startswith(EXEMPT_PATHS)
        ):
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self.policy.allows(origin, headers.get("host", "")):
                await _refuse(scope, receive, send, origin)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, origin: str) -> None:
    reason = (
        f"Cross-origin request refused: {origin} is not this app's origin, and only the "
        "app's own pages may use the chat."
    )
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403, "reason": reason[:120]})
        return
    await JSONResponse({"detail": reason}, status_code=403)(scope, receive, send)
