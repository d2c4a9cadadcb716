"""Signed-in sessions kept in Redis, so logging out or deactivating a user takes effect at once.

A session is the hash `session:{id}` (user_id, email, roles, department_id, created,
last_seen) that expires `ttl_seconds` after it was last used. Each user also has the set
`user_sessions:{user_id}` of their session ids, so revoking every session of a user reads
one small set instead of scanning the keyspace. That set lives as long as the user's
longest-lived session, and ids of sessions that expired on their own are pruned from it
whenever the user signs in again.

Writes that touch both keys run as Lua scripts, so they are atomic: a session can never be
revoked "half way", and a touch can never resurrect a revoked session. The scripts build
session keys from ids they read, which is fine on the standalone Redis Copilot uses (the
embedded one or a single server) but not on Redis Cluster.

Unlike the rate limiter, the store does not hide Redis errors: a session that cannot be
checked must not be trusted, so callers see the exception and refuse.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from copilot.users import Principal

# KEYS: session, user index. ARGV: session id, ttl, session key prefix, then field/value pairs.
_CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[2])
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('EXISTS', ARGV[3] .. member) == 0 then
        redis.call('SREM', KEYS[2], member)
    end
end
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: session. ARGV: now, ttl, user index prefix, session id.
_TOUCH = """
local user_id = redis.call('HGET', KEYS[1], 'user_id')
if not user_id then
    return 0
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local index = ARGV[3] .. user_id
redis.call('SADD', index, ARGV[4])
if redis.call('TTL', index) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', index, ARGV[2])
end
return 1
"""

# KEYS: session. ARGV: user index prefix, session id.
_REVOKE = """
local user_id = redis.call('HGET', KEYS[1], 'user_id')
if not user_id then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. user_id, ARGV[2])
return 1
"""

# KEYS: user index. ARGV: session key prefix.
_REVOKE_USER = """
local revoked = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    revoked = revoked + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return revoked
"""


@dataclass(frozen=True)
class SessionRecord:
    """What a session remembers about its user, enough to serve a chat without the database."""

    session_id: str
    user_id: str
    email: str
    roles: frozenset[str]
    department_id: str | None
    created: datetime
    last_seen: datetime


class SessionStore:
    """Creates, looks up, refreshes and revokes sessions; one instance per Redis client."""

    def __init__(
        self,
        redis: Redis,
        ttl_seconds: int,
        *,
        key_prefix: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError(f"ttl_seconds must be at least 1, not {ttl_seconds}")
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self._session_prefix = f"{key_prefix}session:"
        self._index_prefix = f"{key_prefix}user_sessions:"
        self._clock = clock
        self._create = redis.register_script(_CREATE)
        self._touch = redis.register_script(_TOUCH)
        self._revoke = redis.register_script(_REVOKE)
        self._revoke_user = redis.register_script(_REVOKE_USER)

    def session_key(self, session_id: str) -> str:
        return self._session_prefix + session_id

    def user_index_key(self, user_id: str) -> str:
        return self._index_prefix + user_id

    async def create(self, principal: Principal) -> str:
        """Start a session for the principal and return its id, 256 random bits."""
        session_id = secrets.token_urlsafe(32)
        now = repr(self._clock())
        fields = {
            "user_id": principal.user_id,
            "email": principal.email,
            "roles": json.dumps(sorted(principal.roles)),
            "department_id": principal.department_id or "",
            "created": now,
            "last_seen": now,
        }
        await self._create(
            keys=[self.session_key(session_id), self.user_index_key(principal.user_id)],
            args=[
                session_id,
                self.ttl_seconds,
                self._session_prefix,
                *(item for pair in fields.items() for item in pair),
            ],
        )
        return session_id

    async def get(self, session_id: str) -> SessionRecord | None:
        """The live session with this id, or None once it expired or was revoked."""
        raw = await self.redis.hgetall(self.session_key(session_id))  # type: ignore[misc]
        fields = {_text(key): _text(value) for key, value in raw.items()}
        if "user_id" not in fields:
            return None
        return _record(session_id, fields)

    async def touch(self, session_id: str) -> bool:
        """Record activity and restart the session's lifetime; False if it no longer exists."""
        touched = await self._touch(
            keys=[self.session_key(session_id)],
            args=[repr(self._clock()), self.ttl_seconds, self._index_prefix, session_id],
        )
        return bool(touched)

    async def revoke(self, session_id: str) -> bool:
        """End one session (logout); False if it was already gone."""
        revoked = await self._revoke(
            keys=[self.session_key(session_id)], args=[self._index_prefix, session_id]
        )
        return bool(revoked)

    async def revoke_user(self, user_id: str) -> int:
        """End every session of a user (deactivation); returns how many were still live."""
        revoked = await self._revoke_user(
            keys=[self.user_index_key(user_id)], args=[self._session_prefix]
        )
        return int(revoked)


def _text(value: bytes | str) -> str:
    """Redis answers bytes unless the client decodes responses; accept both."""
    return value.decode() if isinstance(value, bytes) else value


def _timestamp(seconds: str) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _record(session_id: str, fields: Mapping[str, str]) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        user_id=fields["user_id"],
        email=fields.get("email", ""),
        roles=frozenset(json.loads(fields.get("roles") or "[]")),
        department_id=fields.get("department_id") or None,
        created=_timestamp(fields["created"]),
        last_seen=_timestamp(fields["last_seen"]),
    )
