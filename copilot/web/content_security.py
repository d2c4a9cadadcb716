"""No remote images in the chat: a tracking beacon or exfiltration channel otherwise.

Documents and answers are Markdown the chat renders; `![alt](http://x)` (or raw `<img>`,
should HTML ever be enabled) makes every reader's browser fetch that URL. Text from
knowledge and answers passes `neutralise_images` before it is sent or stored: the image
becomes a plain link (`\\![alt](url)` shows "!" and a link), tags become text. The
Content-Security-Policy middleware is the second wall: the chat's HTML pages may load
images only from the app itself, data: and blob: URLs.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: An image's "!" right before its "[" (not already escaped), or "<" opening a media tag.
_IMAGE = re.compile(
    r"(?<!\\)!(?=\[)|<(?=/?\s*(?:img|image|picture|source|svg|video|audio|iframe|object|embed)\b)",
    re.IGNORECASE,
)
#: What a stream may end with that could still become an image once the next token comes.
_UNFINISHED = re.compile(r"(?:\\*!?|<[/\sa-zA-Z]{0,7})\Z")
IMAGE_POLICY = "img-src 'self' data: blob:"


def neutralise_images(text: str) -> str:
    """The text with Markdown images turned into links and media tags into plain text."""
    return _IMAGE.sub(lambda m: "\\!" if m.group() == "!" else "&lt;", text)


class StreamingNeutraliser:
    """`neutralise_images` for text that arrives in pieces (streamed tokens).

    A piece ending in "!", backslashes or a partial "<img" is held back until the next piece shows
    whether it starts an image; `finish()` returns what is still held.
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        unfinished = _UNFINISHED.search(text)
        cut = unfinished.start() if unfinished else len(text)
        self._held = text[cut:]
        return neutralise_images(text[:cut])

    def finish(self) -> str:
        held, self._held = self._held, ""
        return neutralise_images(held)


class ImagePolicy:
    """Adds `Content-Security-Policy: img-src 'self' data: blob:` to HTML responses.

    An HTML response that already has a policy gets the img-src directive added to it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    existing = headers.get("content-security-policy")
                    if existing is None:
                        headers["Content-Security-Policy"] = IMAGE_POLICY
                    elif "img-src" not in existing:
                        headers["Content-Security-Policy"] = f"{existing}; {IMAGE_POLICY}"
            await send(message)

        await self.app(scope, receive, send_with_policy)
