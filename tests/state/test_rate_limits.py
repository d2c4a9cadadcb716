"""Rate limits: the sliding minute, daily quotas, role overrides, atomicity, failing open."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from copilot.settings import Settings
from copilot.state.rate_limits import Decision, Limits, RateLimiter, RoleLimits
from copilot.state.redis import connect_redis
from tests.state import BACKENDS, Backend, redis_backend

NOON = datetime(2024, 3, 5, 12, 0, tzinfo=UTC).timestamp()
NEXT_MIDNIGHT = datetime(2024, 3, 6, tzinfo=UTC).timestamp()
ROLES = ["Regular User"]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with redis_backend(request.param, request, tmp_path) as backend:
        yield backend


def limiter(backend: Backend, limits: Limits | RoleLimits) -> RateLimiter:
    return RateLimiter(backend.client, limits, key_prefix=backend.key_prefix)


async def test_sliding_window_allows_n_per_minute(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=3, daily_messages=100, daily_tokens=10_000))

    first = [await limits.check_and_record("ann", ROLES, now=NOON + s) for s in (0, 10, 20)]
    assert [d.allowed for d in first] == [True, True, True]
    assert [d.remaining_minute for d in first] == [2, 1, 0]
    assert [d.remaining_today for d in first] == [99, 98, 97]

    refused = await limits.check_and_record("ann", ROLES, now=NOON + 30)
    assert refused == Decision(
        allowed=False,
        reason="3 messages per minute",
        retry_after_seconds=30.0,  # the hit at NOON leaves the window at NOON + 60
        remaining_minute=0,
        remaining_today=97,
        remaining_tokens_today=10_000,
    )
    almost = await limits.check_and_record("ann", ROLES, now=NOON + 59.999)
    assert not almost.allowed and almost.retry_after_seconds == pytest.approx(0.001, abs=1e-6)

    # Refused messages were not counted: once the oldest hit leaves, one more goes through.
    assert (await limits.check_and_record("ann", ROLES, now=NOON + 60)).allowed
    again = await limits.check_and_record("ann", ROLES, now=NOON + 61)
    assert not again.allowed and again.retry_after_seconds == 9.0  # NOON + 10 leaves at 70
    assert (await limits.check_and_record("bob", ROLES, now=NOON + 61)).allowed


async def test_window_key_is_a_short_lived_sorted_set(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=3, daily_messages=100, daily_tokens=10_000))
    await limits.check_and_record("ann", ROLES, now=NOON)
    redis = backend.client

    minute, quota = f"{backend.key_prefix}ratelimit:ann:minute", limits.quota_key("ann", NOON)
    assert quota == f"{backend.key_prefix}quota:ann:20240305"
    assert await redis.type(minute) == b"zset" and await redis.zcard(minute) == 1
    assert 0 < await redis.ttl(minute) <= 61
    assert await redis.hgetall(quota) == {b"messages": b"1"}  # type: ignore[misc]
    assert 2 * 86400 - 10 < await redis.ttl(quota) <= 2 * 86400


async def test_daily_message_quota(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=100, daily_messages=5, daily_tokens=10_000))
    for i in range(5):
        assert (await limits.check_and_record("ann", ROLES, now=NOON + i * 100)).allowed

    refused = await limits.check_and_record("ann", ROLES, now=NOON + 600)
    assert not refused.allowed and refused.reason == "daily quota of 5 messages"
    assert refused.retry_after_seconds == NEXT_MIDNIGHT - (NOON + 600)
    assert refused.remaining_today == 0

    tomorrow = await limits.check_and_record("ann", ROLES, now=NEXT_MIDNIGHT)
    assert tomorrow.allowed and tomorrow.remaining_today == 4


async def test_daily_token_quota(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=100, daily_messages=100, daily_tokens=1000))
    assert (await limits.check_and_record("ann", ROLES, now=NOON)).allowed
    assert await limits.record_tokens("ann", 600, now=NOON) == 600
    decision = await limits.check_and_record("ann", ROLES, now=NOON + 1)
    assert decision.allowed and decision.remaining_tokens_today == 400
    assert await limits.record_tokens("ann", 450, now=NOON + 1) == 1050

    refused = await limits.check_and_record("ann", ROLES, now=NOON + 2)
    assert not refused.allowed and refused.reason == "daily quota of 1000 tokens"
    assert refused.retry_after_seconds == NEXT_MIDNIGHT - (NOON + 2)
    assert refused.remaining_tokens_today == 0 and refused.remaining_today == 98

    tomorrow = await limits.check_and_record("ann", ROLES, now=NEXT_MIDNIGHT + 1)
    assert tomorrow.allowed and tomorrow.remaining_tokens_today == 1000
    with pytest.raises(ValueError, match="negative"):
        await limits.record_tokens("ann", -1)


async def test_the_longest_wait_is_reported(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=2, daily_messages=2, daily_tokens=10_000))
    await limits.check_and_record("ann", ROLES, now=NOON)
    await limits.check_and_record("ann", ROLES, now=NOON + 1)
    refused = await limits.check_and_record("ann", ROLES, now=NOON + 2)
    assert refused.reason == "daily quota of 2 messages"
    assert refused.retry_after_seconds == NEXT_MIDNIGHT - (NOON + 2)


def test_role_limits_pick_the_most_generous() -> None:
    default = Limits(per_minute=2, daily_messages=100, daily_tokens=1000)
    guest = Limits(per_minute=1, daily_messages=200, daily_tokens=100)
    power = Limits(per_minute=5, daily_messages=50, daily_tokens=5000)
    resolve = RoleLimits(default, {"Guest": guest, "Power User": power})

    assert resolve(frozenset()) == default
    assert resolve(frozenset({"Regular User"})) == default
    assert resolve(frozenset({"Guest"})) == guest
    assert resolve(frozenset({"Guest", "Power User"})) == Limits(5, 200, 5000)
    assert resolve(frozenset({"Guest", "Regular User"})) == Limits(2, 200, 1000)


async def test_role_limits_apply_per_user(backend: Backend) -> None:
    limits = limiter(
        backend,
        RoleLimits(
            Limits(per_minute=2, daily_messages=100, daily_tokens=1000),
            {
                "Guest": Limits(per_minute=1, daily_messages=100, daily_tokens=1000),
                "Power User": Limits(per_minute=5, daily_messages=100, daily_tokens=1000),
            },
        ),
    )
    users = {
        "guest": ["Guest"],
        "power-guest": ["Guest", "Power User"],
        "regular-guest": ["Guest", "Regular User"],
    }
    allowed = {user: 0 for user in users}
    last: dict[str, Decision] = {}
    for user, roles in users.items():
        for i in range(8):
            last[user] = await limits.check_and_record(user, roles, now=NOON + i)
            allowed[user] += last[user].allowed

    assert allowed == {"guest": 1, "power-guest": 5, "regular-guest": 2}
    assert last["guest"].reason == "1 message per minute"
    assert last["power-guest"].reason == "5 messages per minute"


@pytest.mark.parametrize("exhausted", ["per_minute", "daily_messages"])
async def test_concurrent_checks_admit_exactly_the_limit(backend: Backend, exhausted: str) -> None:
    values = {"per_minute": 1000, "daily_messages": 1000, "daily_tokens": 10_000, exhausted: 20}
    limits = limiter(backend, Limits(**values))

    decisions = await asyncio.gather(
        *(limits.check_and_record("ann", ROLES, now=NOON + i / 1000) for i in range(50))
    )

    assert sum(d.allowed for d in decisions) == 20
    assert not any(d.degraded for d in decisions)
    redis = backend.client
    assert await redis.zcard(limits.minute_key("ann")) == 20
    assert await redis.hget(limits.quota_key("ann", NOON), "messages") == b"20"  # type: ignore[misc]


async def test_fails_open_fast_when_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle = connect_redis(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    limits = RateLimiter(handle.client, Limits(per_minute=1, daily_messages=1, daily_tokens=1))
    caplog.set_level(logging.WARNING, logger="copilot.state.rate_limits")

    started = time.perf_counter()
    decisions = [await limits.check_and_record("ann", ROLES, now=NOON + i) for i in range(3)]
    assert time.perf_counter() - started < 1.0  # no retry loop holds the chat up

    assert decisions == [Decision(allowed=True, degraded=True)] * 3
    assert limits.degraded and limits.last_error and "127.0.0.1:1" in limits.last_error
    assert limits.last_error_at is not None
    assert await limits.record_tokens("ann", 10) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert "check_and_record for user ann" in warnings[0] and "127.0.0.1:1" in warnings[0]
    assert "record_tokens for user ann" in warnings[3]
    await handle.aclose()


async def test_fails_open_on_redis_errors_and_recovers(backend: Backend) -> None:
    limits = limiter(backend, Limits(per_minute=1, daily_messages=100, daily_tokens=1000))
    await backend.client.set(limits.minute_key("ann"), "not a sorted set")

    degraded = await limits.check_and_record("ann", ROLES, now=NOON)
    assert degraded.allowed and degraded.degraded
    assert limits.degraded and limits.last_error and "WRONGTYPE" in limits.last_error

    await backend.client.delete(limits.minute_key("ann"))
    recovered = await limits.check_and_record("ann", ROLES, now=NOON)
    assert recovered.allowed and not recovered.degraded and recovered.remaining_minute == 0
    assert not limits.degraded and limits.last_error is None
    assert not (await limits.check_and_record("ann", ROLES, now=NOON + 1)).allowed


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        Limits(per_minute=0, daily_messages=1, daily_tokens=1)
