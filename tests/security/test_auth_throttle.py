"""The sign-in throttle's windows, on the embedded Redis and a real server (finding 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from copilot.state.sign_in_throttle import SignInThrottle, SignInThrottled
from tests.state import BACKENDS, FakeClock, redis_backend


@pytest.fixture(params=BACKENDS)
async def throttle(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SignInThrottle, FakeClock]]:
    clock = FakeClock(1_700_000_000.0)
    async with redis_backend(request.param, request, tmp_path) as backend:
        yield (
            SignInThrottle(
                backend.client,
                max_failures_per_account=3,
                max_failures_per_client=5,
                window_seconds=600,
                key_prefix=backend.key_prefix,
                clock=clock,
            ),
            clock,
        )


async def test_the_account_window_fills_and_slides(
    throttle: tuple[SignInThrottle, FakeClock],
) -> None:
    limiter, clock = throttle
    for _ in range(3):
        await limiter.attempt("Victim@Example.com", "10.0.0.1")
        clock.advance(60)
    with pytest.raises(SignInThrottled) as refused:
        await limiter.attempt("victim@example.com ", "10.0.0.2")  # same account, any client
    assert refused.value.retry_after == 600 - 180  # until the oldest attempt leaves
    assert "Try again in 7 minutes" in str(refused.value)
    clock.advance(600 - 180)
    await limiter.attempt("victim@example.com", "10.0.0.2")  # the oldest one slid out


async def test_a_success_clears_the_account_but_not_the_client(
    throttle: tuple[SignInThrottle, FakeClock],
) -> None:
    limiter, _ = throttle
    for n in range(4):
        await limiter.attempt(f"other-{n}@example.com", "10.0.0.9")
    mine = await limiter.attempt("me@example.com", "10.0.0.9")  # the client's 5th
    await limiter.succeeded(mine)  # taken back from the client's window
    await limiter.attempt("me@example.com", "10.0.0.9")
    with pytest.raises(SignInThrottled):
        await limiter.attempt("me@example.com", "10.0.0.9")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        SignInThrottle(
            None, max_failures_per_account=1, max_failures_per_client=1, window_seconds=0
        )  # type: ignore[arg-type]
