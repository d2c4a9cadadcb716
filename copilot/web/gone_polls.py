"""A socket.io poll whose browser left before it was read is dropped, not a traceback.

A page that reloads or navigates while its socket.io long-poll is on the way sends no
request body, only a disconnect. python-engineio 4.15's ASGI driver then hands its server
an empty environ, which fails on `environ['REQUEST_METHOD']` and logs "Exception in ASGI
application" with a full traceback for an ordinary reload (python-engineio #464; InvokeAI
#9400 works around it the same way). `GonePolls` reads the first message of each request
under `path` itself: a disconnect ends the request there (nobody is left to answer), and
anything else is handed on to the app as if unread.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class GonePolls:
    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path):
            await self.app(scope, receive, send)
            return
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        unread: list[Message] = [first]

        async def replayed() -> Message:
            return unread.pop() if unread else await receive()

        await self.app(scope, replayed, send)
