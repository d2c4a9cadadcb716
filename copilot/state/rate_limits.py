"""Per-user rate limits: a sliding one-minute window and daily message and token quotas.

Each check is one Lua script, so the check and the recording of the hit are atomic: fifty
messages arriving at once against a limit of twenty let exactly twenty through, whichever
web worker receives them.

Keys, per user:
  `ratelimit:{user_id}:minute`   sorted set of the hits of the last minute, scored by time
                                 in microseconds (integers, exact in Lua's doubles); expires
                                 a minute after the last hit.
  `quota:{user_id}:{yyyymmdd}`   hash with `messages` and `tokens` for that UTC day;
                                 expires two days after its last update.

Rate limiting protects the service, it is not access control, so it fails open: when Redis
is unreachable or errors, the message is allowed, a warning is logged, and the limiter
reports itself degraded (`Decision.degraded`, `RateLimiter.last_error`) for /healthz.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from copilot.settings import RoleLimitOverride, Settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
QUOTA_TTL_SECONDS = 2 * 24 * 3600
_MICROS = 1_000_000

# KEYS: minute window, today's quota.
# ARGV: now (µs), window (µs), per_minute, daily_messages, daily_tokens, hit id,
#       window key ttl (s), quota key ttl (s).
# Returns {allowed (1/0), refused limit ('' | 'tokens' | 'messages' | 'minute'),
#          oldest hit in the window (µs, 0 unless refused by the window),
#          hits in the window, messages today, tokens today}, counts after recording.
_CHECK_AND_RECORD = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local daily_messages = tonumber(ARGV[4])
local daily_tokens = tonumber(ARGV[5])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local in_window = redis.call('ZCARD', KEYS[1])
local today = redis.call('HMGET', KEYS[2], 'messages', 'tokens')
local messages = tonumber(today[1]) or 0
local tokens = tonumber(today[2]) or 0

if tokens >= daily_tokens then
    return {0, 'tokens', 0, in_window, messages, tokens}
end
if messages >= daily_messages then
    return {0, 'messages', 0, in_window, messages, tokens}
end
if in_window >= per_minute then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, 'minute', oldest[2], in_window, messages, tokens}
end

redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('HINCRBY', KEYS[2], 'messages', 1)
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {1, '', 0, in_window + 1, messages + 1, tokens}
"""


@dataclass(frozen=True)
class Limits:
    """How much one user may send: messages per minute, and messages and tokens per UTC day."""

    per_minute: int
    daily_messages: int
    daily_tokens: int

    def __post_init__(self) -> None:
        for name in ("per_minute", "daily_messages", "daily_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            per_minute=settings.rate_limit_per_minute,
            daily_messages=settings.daily_message_quota,
            daily_tokens=settings.daily_token_quota,
        )

    def overridden(self, override: RoleLimitOverride) -> Limits:
        """These limits with a role's own values where it sets them."""
        return Limits(
            per_minute=override.per_minute or self.per_minute,
            daily_messages=override.daily_messages or self.daily_messages,
            daily_tokens=override.daily_tokens or self.daily_tokens,
        )

    def most_generous(self, other: Limits) -> Limits:
        """Each limit at the larger of the two, for a user who holds both roles."""
        return Limits(
            per_minute=max(self.per_minute, other.per_minute),
            daily_messages=max(self.daily_messages, other.daily_messages),
            daily_tokens=max(self.daily_tokens, other.daily_tokens),
        )


LimitsResolver = Callable[[frozenset[str]], Limits]


@dataclass(frozen=True)
class RoleLimits:
    """Limits per role; roles without an override get the default, several roles the most
    generous of theirs (so an extra restrictive role never takes rights away)."""

    default: Limits
    overrides: Mapping[str, Limits] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RoleLimits:
        default = Limits.from_settings(settings)
        return cls(
            default,
            {
                role: default.overridden(override)
                for role, override in settings.rate_limits_by_role.items()
            },
        )

    def __call__(self, roles: frozenset[str]) -> Limits:
        if not roles:
            return self.default
        per_role = [self.overrides.get(role, self.default) for role in sorted(roles)]
        limits = per_role[0]
        for other in per_role[1:]:
            limits = limits.most_generous(other)
        return limits


@dataclass(frozen=True)
class Decision:
    """Whether a message may go through; if not, which limit refused it and for how long.

    `degraded` means Redis could not be asked and the message was allowed unchecked; the
    remaining counts are then unknown (None).
    """

    allowed: bool
    reason: str | None = None
    retry_after_seconds: float | None = None
    remaining_minute: int | None = None
    remaining_today: int | None = None
    remaining_tokens_today: int | None = None
    degraded: bool = False


class RateLimiter:
    """Checks and records each user's messages against their limits, atomically in Redis."""

    def __init__(
        self,
        redis: Redis,
        limits: Limits | LimitsResolver,
        *,
        key_prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self._limits_for: LimitsResolver = (
            (lambda roles: limits) if isinstance(limits, Limits) else limits
        )
        self._key_prefix = key_prefix
        self._clock = clock
        self._check_and_record = redis.register_script(_CHECK_AND_RECORD)
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    @classmethod
    def from_settings(
        cls, redis: Redis, settings: Settings, *, key_prefix: str = ""
    ) -> RateLimiter:
        """The limiter configured by settings, per-role overrides included."""
        return cls(redis, RoleLimits.from_settings(settings), key_prefix=key_prefix)

    @property
    def degraded(self) -> bool:
        """True while the last call to Redis failed and limits are not being enforced."""
        return self.last_error is not None

    def limits_for(self, roles: Iterable[str]) -> Limits:
        return self._limits_for(frozenset(roles))

    def minute_key(self, user_id: str) -> str:
        return f"{self._key_prefix}ratelimit:{user_id}:minute"

    def quota_key(self, user_id: str, now: float) -> str:
        day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
        return f"{self._key_prefix}quota:{user_id}:{day}"

    async def check_and_record(
        self, user_id: str, roles: Iterable[str], now: float | None = None
    ) -> Decision:
        """Allow and count one message, or refuse it without counting it.

        `now` is seconds since the epoch (time.time()); tests pass it to move the clock.
        """
        now = self._clock() if now is None else now
        limits = self.limits_for(roles)
        now_us = round(now * _MICROS)
        window_us = WINDOW_SECONDS * _MICROS
        try:
            reply = await self._check_and_record(
                keys=[self.minute_key(user_id), self.quota_key(user_id, now)],
                args=[
                    now_us,
                    window_us,
                    limits.per_minute,
                    limits.daily_messages,
                    limits.daily_tokens,
                    f"{now_us}-{secrets.token_hex(6)}",
                    WINDOW_SECONDS + 1,
                    QUOTA_TTL_SECONDS,
                ],
            )
        except (RedisError, OSError) as error:
            self._failed("check_and_record", user_id, error)
            return Decision(allowed=True, degraded=True)
        self._recovered()

        allowed, refused, oldest_us, in_window, messages, tokens = reply
        remaining_minute = max(0, limits.per_minute - int(in_window))
        remaining_today = max(0, limits.daily_messages - int(messages))
        remaining_tokens_today = max(0, limits.daily_tokens - int(tokens))
        reason: str | None = None
        retry_after: float | None = None
        if not allowed:
            reason, retry_after = _refusal(_text(refused), limits, now, _text(oldest_us))
        return Decision(
            allowed=bool(allowed),
            reason=reason,
            retry_after_seconds=retry_after,
            remaining_minute=remaining_minute,
            remaining_today=remaining_today,
            remaining_tokens_today=remaining_tokens_today,
        )

    async def record_tokens(
        self, user_id: str, tokens: int, now: float | None = None
    ) -> int | None:
        """Add a reply's tokens to today's count; the total, or None if Redis failed.

        Tokens are known only after answering, so they count against the next message.
        """
        if tokens < 0:
            raise ValueError(f"tokens must not be negative, not {tokens}")
        now = self._clock() if now is None else now
        key = self.quota_key(user_id, now)
        try:
            async with self.redis.pipeline(transaction=True) as pipeline:
                pipeline.hincrby(key, "tokens", tokens)
                pipeline.expire(key, QUOTA_TTL_SECONDS)
                total, _ = await pipeline.execute()
        except (RedisError, OSError) as error:
            self._failed("record_tokens", user_id, error)
            return None
        self._recovered()
        return int(total)

    def _failed(self, operation: str, user_id: str, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_at = datetime.now(UTC)
        logger.warning(
            "rate limiting degraded, allowing unchecked: %s for user %s failed on %s: %s",
            operation,
            user_id,
            _describe(self.redis),
            self.last_error,
        )

    def _recovered(self) -> None:
        if self.last_error is not None:
            logger.info("rate limiting restored: %s answers again", _describe(self.redis))
            self.last_error = None


def _refusal(refused: str, limits: Limits, now: float, oldest_hit_us: str) -> tuple[str, float]:
    """Which limit refused a message, and exactly how long until it would allow one."""
    if refused == "minute":
        leaves_window_us = round(float(oldest_hit_us)) + WINDOW_SECONDS * _MICROS
        return (
            f"{_plural(limits.per_minute, 'message')} per minute",
            (leaves_window_us - round(now * _MICROS)) / _MICROS,
        )
    if refused == "messages":
        reason = f"daily quota of {_plural(limits.daily_messages, 'message')}"
    else:
        reason = f"daily quota of {_plural(limits.daily_tokens, 'token')}"
    return reason, _seconds_until_utc_midnight(now)


def _seconds_until_utc_midnight(now: float) -> float:
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return midnight.timestamp() - now


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(redis: Redis) -> str:
    """Where the client points, for log lines an operator can act on."""
    kwargs = redis.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"redis at {kwargs['path']}"
    return f"redis at {kwargs.get('host')}:{kwargs.get('port')}"
