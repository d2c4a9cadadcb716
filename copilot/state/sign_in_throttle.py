"""Failed sign-ins per account and per client address, in Redis sliding windows.

Each password check costs ~0.2 s of Argon2 CPU, so unlimited guesses are both a brute force
and a cheap denial of service. Before a password is checked, one Lua script looks at both
windows and, if neither is full, records the attempt in both at once: fifty guesses sent
together against a limit of ten let exactly ten reach Argon2. A successful sign-in takes
its attempt back from the client's window and clears the account's window.

Keys:
  `signin:account:{sha256 of the lower-cased email}`  sorted set of attempts, scored by
                            time in microseconds (hashed: the email is whatever was typed)
  `signin:client:{address}` the same per client address
Both expire one window after their last attempt.

Unlike message rate limits this fails closed: the caller sees Redis errors, and sign-in
is refused anyway when Redis is down (no session could be stored).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

_MICROS = 1_000_000

# KEYS: account window, client window. ARGV: now (µs), window (µs), account limit,
# client limit, attempt id, key ttl (s).
# Returns {allowed (1/0), oldest attempt of the full window (µs) when refused}.
_CHECK_AND_RECORD = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
end
for i, key in ipairs(KEYS) do
    if redis.call('ZCARD', key) >= limits[i] then
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        return {0, oldest[2]}
    end
end
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[5])
    redis.call('EXPIRE', key, ARGV[6])
end
return {1, 0}
"""


class SignInThrottled(Exception):
    """Too many failed sign-ins for the account or from the client; says when to retry."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(
            "Too many failed sign-ins for this account or from this address. "
            f"Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        )


@dataclass(frozen=True)
class Attempt:
    """A recorded sign-in attempt: taken back if it succeeds."""

    account_key: str
    client_key: str
    attempt_id: str


class SignInThrottle:
    def __init__(
        self,
        redis: Redis,
        *,
        max_failures_per_account: int,
        max_failures_per_client: int,
        window_seconds: int,
        key_prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (
            ("max_failures_per_account", max_failures_per_account),
            ("max_failures_per_client", max_failures_per_client),
            ("window_seconds", window_seconds),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.redis = redis
        self.max_failures_per_account = max_failures_per_account
        self.max_failures_per_client = max_failures_per_client
        self.window_seconds = window_seconds
        self.key_prefix = key_prefix
        self.clock = clock
        self._check = redis.register_script(_CHECK_AND_RECORD)

    async def attempt(self, email: str, client: str) -> Attempt:
        """Record an attempt, or raise SignInThrottled if either window is full."""
        attempt = Attempt(
            f"{self.key_prefix}signin:account:{_digest(email.strip().lower())}",
            f"{self.key_prefix}signin:client:{_digest(client)}",
            secrets.token_hex(8),
        )
        now = int(self.clock() * _MICROS)
        window = self.window_seconds * _MICROS
        allowed, oldest = await self._check(
            keys=[attempt.account_key, attempt.client_key],
            args=[
                now,
                window,
                self.max_failures_per_account,
                self.max_failures_per_client,
                attempt.attempt_id,
                self.window_seconds,
            ],
        )
        if not int(allowed):
            retry_after = math.ceil((int(float(oldest)) + window - now) / _MICROS)
            raise SignInThrottled(max(1, retry_after))
        return attempt

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the account starts afresh, the client loses one attempt."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(attempt.account_key)
            pipe.zrem(attempt.client_key, attempt.attempt_id)
            await pipe.execute()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
