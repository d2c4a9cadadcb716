"""A socket.io poll whose browser already left ends quietly; every other request goes on."""

from __future__ import annotations

from typing import Any

import pytest
import socketio
from starlette.types import Message

from copilot.web.gone_polls import GonePolls

PATH = "/chat/ws/socket.io"


def _socket_app() -> Any:
    return socketio.ASGIApp(socketio.AsyncServer(async_mode="asgi"), socketio_path=PATH)


def _poll() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": f"{PATH}/",
        "query_string": b"EIO=4&transport=polling",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }


async def _request(app: Any, first: Message) -> list[Message]:
    messages = [first]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_poll(), receive, send)
    return sent


async def test_engineio_alone_fails_on_a_poll_whose_browser_left() -> None:
    """What `GonePolls` is for (python-engineio #464): if this stops failing, it can go."""
    with pytest.raises(KeyError, match="REQUEST_METHOD"):
        await _request(_socket_app(), {"type": "http.disconnect"})


async def test_a_poll_whose_browser_left_ends_with_nothing_sent() -> None:
    assert await _request(GonePolls(_socket_app(), PATH), {"type": "http.disconnect"}) == []


async def test_a_poll_that_is_still_wanted_is_answered_as_without_it() -> None:
    handshake = {"type": "http.request", "body": b"", "more_body": False}
    sent = await _request(GonePolls(_socket_app(), PATH), handshake)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.startswith(b'0{"sid":')  # engine.io's open packet: a new session
