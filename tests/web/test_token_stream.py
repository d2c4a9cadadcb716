"""TokenStream: the first token goes out at once, then at most one frame per interval."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from copilot.web.chat import TokenStream


class SentFrames:
    """Stands in for a Chainlit message: records what stream_token was given."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def stream_token(self, token: str) -> None:
        self.frames.append(token)


def stream_into(frames: SentFrames, frame_seconds: float) -> TokenStream:
    return TokenStream(cast(Any, frames), frame_seconds=frame_seconds)


async def test_tokens_arriving_together_go_out_as_the_first_token_and_one_frame() -> None:
    sent = SentFrames()
    stream = stream_into(sent, frame_seconds=60)

    for token in ["Hotels", " are", " reimbursed", " [1]."]:
        await stream(token)
    assert sent.frames == ["Hotels"]  # the time to first token does not wait for a frame

    await stream.flush()
    assert sent.frames == ["Hotels", " are reimbursed [1]."]
    await stream.flush()
    assert len(sent.frames) == 2  # nothing left to send


async def test_tokens_slower_than_the_frame_go_out_one_by_one() -> None:
    sent = SentFrames()
    stream = stream_into(sent, frame_seconds=0.01)

    for token in ["Economy", " class", " by", " default."]:
        await stream(token)
        await asyncio.sleep(0.02)
    await stream.flush()

    assert sent.frames == ["Economy", " class", " by", " default."]
