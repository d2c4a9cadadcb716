"""Sessions in Redis: what they remember, how they expire, and revoking them."""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from copilot.state.sessions import SessionRecord, SessionStore
from copilot.users import Principal
from tests.state import BACKENDS, Backend, FakeClock, redis_backend

T0 = datetime(2024, 3, 5, 12, 0, tzinfo=UTC).timestamp()
TTL = 3600


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with redis_backend(request.param, request, tmp_path) as backend:
        yield backend


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> SessionStore:
    return SessionStore(backend.client, TTL, key_prefix=backend.key_prefix, clock=clock)


def principal(
    name: str, *, department_id: str | None = "dep-1", roles: set[str] | None = None
) -> Principal:
    return Principal(
        user_id=f"user-{name}",
        email=f"{name}@example.com",
        display_name=name.title(),
        department_id=department_id,
        department_code="ENG" if department_id else None,
        roles=frozenset(roles if roles is not None else {"Regular User"}),
        permissions=frozenset(),
        classifications=frozenset({"public"}),
    )


async def members(store: SessionStore, user_id: str) -> set[str]:
    raw = await store.redis.smembers(store.user_index_key(user_id))  # type: ignore[misc]
    return {m.decode() for m in raw}


async def test_session_remembers_the_principal(store: SessionStore) -> None:
    ann = principal("ann", roles={"Regular User", "Department Admin"})
    session_id = await store.create(ann)

    assert await store.get(session_id) == SessionRecord(
        session_id=session_id,
        user_id="user-ann",
        email="ann@example.com",
        roles=frozenset({"Regular User", "Department Admin"}),
        department_id="dep-1",
        created=datetime.fromtimestamp(T0, UTC),
        last_seen=datetime.fromtimestamp(T0, UTC),
    )
    bob_id = await store.create(principal("bob", department_id=None, roles=set()))
    bob = await store.get(bob_id)
    assert bob is not None and bob.department_id is None and bob.roles == frozenset()
    assert await store.get("no-such-session") is None


async def test_session_ids_are_random_and_long(store: SessionStore) -> None:
    ids = [await store.create(principal("ann")) for _ in range(50)]
    assert len(set(ids)) == 50
    alphabet = set(string.ascii_letters + string.digits + "-_")
    assert all(len(i) >= 43 and set(i) <= alphabet for i in ids)


async def test_ttl_is_set_and_touch_refreshes_it(store: SessionStore, clock: FakeClock) -> None:
    redis = store.redis
    session_id = await store.create(principal("ann"))
    key, index = store.session_key(session_id), store.user_index_key("user-ann")
    assert TTL - 5 <= await redis.ttl(key) <= TTL
    assert TTL - 5 <= await redis.ttl(index) <= TTL

    await redis.expire(key, 5)
    await redis.expire(index, 5)
    clock.advance(90)
    assert await store.touch(session_id)

    assert TTL - 5 <= await redis.ttl(key) <= TTL
    assert TTL - 5 <= await redis.ttl(index) <= TTL
    record = await store.get(session_id)
    assert record is not None
    assert record.created == datetime.fromtimestamp(T0, UTC)
    assert record.last_seen == datetime.fromtimestamp(T0 + 90, UTC)


async def test_user_index_lives_as_long_as_the_longest_session(
    store: SessionStore, backend: Backend, clock: FakeClock
) -> None:
    await store.create(principal("ann"))
    short_lived = SessionStore(backend.client, 60, key_prefix=backend.key_prefix, clock=clock)
    short_id = await short_lived.create(principal("ann"))
    assert await short_lived.touch(short_id)

    assert await backend.client.ttl(short_lived.session_key(short_id)) <= 60
    assert await backend.client.ttl(store.user_index_key("user-ann")) > TTL - 5


async def test_expired_session_is_gone_and_touch_does_not_revive_it(store: SessionStore) -> None:
    session_id = await store.create(principal("ann"))
    await store.redis.pexpire(store.session_key(session_id), 50)
    await asyncio.sleep(0.15)

    assert await store.get(session_id) is None
    assert not await store.touch(session_id)
    assert not await store.redis.exists(store.session_key(session_id))


async def test_new_sign_in_prunes_expired_sessions_from_the_index(store: SessionStore) -> None:
    expired = await store.create(principal("ann"))
    await store.redis.delete(store.session_key(expired))  # as if its TTL ran out
    live = await store.create(principal("ann"))
    assert await members(store, "user-ann") == {live}


async def test_revoke_ends_one_session(store: SessionStore) -> None:
    phone = await store.create(principal("ann"))
    laptop = await store.create(principal("ann"))

    assert await store.revoke(phone)
    assert await store.get(phone) is None
    assert not await store.touch(phone)
    assert not await store.redis.exists(store.session_key(phone))
    assert await members(store, "user-ann") == {laptop}
    assert await store.get(laptop) is not None
    assert not await store.revoke(phone)


async def test_revoke_user_ends_all_their_sessions_only(store: SessionStore) -> None:
    ann_sessions = [await store.create(principal("ann")) for _ in range(3)]
    bob_session = await store.create(principal("bob"))
    await store.redis.delete(store.session_key(ann_sessions[0]))  # already expired

    assert await store.revoke_user("user-ann") == 2
    for session_id in ann_sessions:
        assert await store.get(session_id) is None
        assert not await store.touch(session_id)
    assert not await store.redis.exists(store.user_index_key("user-ann"))
    assert await store.get(bob_session) is not None
    assert await members(store, "user-bob") == {bob_session}
    assert await store.revoke_user("user-ann") == 0
    assert await store.revoke_user("user-nobody") == 0


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        SessionStore(Redis(), 0)
