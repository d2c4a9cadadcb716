"""The chat's HTML names no other host: every asset comes from the app itself.

Chainlit 2.12's index.html preconnects to Google Fonts and links KaTeX's CSS on jsDelivr
outside any of its hooks, so every chat page load would call out to the internet (a leak
behind a firewall, a blank wait offline). Its font hook (`custom_fonts` in public/theme.json)
already points the font at the Inter we bundle in public/fonts/inter/; `OfflinePage` drops
what is left: each `<link>` to another host, and each `<meta>` whose content is a URL of
another host (Chainlit's default og:url and og:image). KaTeX is not needed: the chat
renders no math (`latex = false` in .chainlit/config.toml; tests/web check both).
"""

from __future__ import annotations

import gzip
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: A <link> or <meta> tag (attributes may span lines) naming an absolute http(s) URL.
_REMOTE_TAG = re.compile(
    r"[ \t]*<(?:link|meta)\b[^>]*\b(?:href|content)=[\"']?(?:https?:)?//[^>]*>\n?",
    re.IGNORECASE,
)


def without_remote_tags(html: str) -> str:
    """`html` less its <link> and <meta> tags that point to another host."""
    return _REMOTE_TAG.sub("", html)


class OfflinePage:
    """Rewrites the HTML pages under `prefix` with `without_remote_tags` (sent uncompressed:
    Chainlit's index is about a kilobyte)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = MutableHeaders(scope=message).get("content-type", "")
                if not content_type.startswith("text/html"):
                    await send(message)
                    return
                start = message  # held until the whole page is in
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = MutableHeaders(scope=start)
            page = b"".join(body)
            if headers.get("content-encoding") == "gzip":  # Chainlit's app gzips
                page = gzip.decompress(page)
                del headers["content-encoding"]
            page = without_remote_tags(page.decode()).encode()
            headers["content-length"] = str(len(page))
            await send(start)
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, rewrite)
