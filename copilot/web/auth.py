"""Sign-in for the chat: password, a trusted SSO header, or Chainlit's OAuth providers.

Each sign-in creates a session in Redis (`session:{id}`) whose id rides in the signed
token Chainlit issues. Every message looks the session up again, so logout and
`copilot users deactivate` take effect on the very next message.
"""

from __future__ import annotations

import logging
from typing import Any

import chainlit as cl
from chainlit.auth.jwt import decode_jwt
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db.models import User
from copilot.db.types import utcnow
from copilot.users import Principal
from copilot.web.runtime import current

log = logging.getLogger(__name__)


async def _signed_in(user: User) -> cl.User:
    """A Chainlit user for an authenticated account, with a fresh Redis session."""
    principal = users.principal_of(user)
    try:
        session_id = await current().session_store.create(principal)
    except RedisError as error:
        # Redis down: sign-in still works; each message then checks the database only.
        log.warning("could not create a session for %s: %s", principal.email, error)
        session_id = ""
    return cl.User(
        identifier=principal.email,
        display_name=principal.display_name,
        metadata={
            "user_id": principal.user_id,
            "session_id": session_id,
            "roles": sorted(principal.roles),
        },
    )


async def password_sign_in(email: str, password: str) -> cl.User | None:
    async with current().sessions() as session:
        user = await users.authenticate(session, email, password)
        return await _signed_in(user) if user is not None else None


async def header_sign_in(headers: dict[str, str]) -> cl.User | None:
    """Trusted-header SSO: the proxy in front of us has already authenticated the user."""
    settings = current().settings
    email = next((v for k, v in headers.items() if k.lower() == settings.auth_header.lower()), "")
    if not email.strip():
        return None
    async with current().sessions() as session:
        user = await _user_for_sso(session, email)
        return await _signed_in(user) if user is not None else None


async def oauth_sign_in(
    provider_id: str,
    token: str,
    raw_user_data: dict[str, Any],
    default_user: cl.User,
    id_token: str | None = None,
) -> cl.User | None:
    """Chainlit's OAuth providers pass through; accounts are matched by email."""
    email = raw_user_data.get("email") or default_user.identifier
    async with current().sessions() as session:
        user = await _user_for_sso(session, str(email))
        return await _signed_in(user) if user is not None else None


async def _user_for_sso(session: AsyncSession, email: str) -> User | None:
    settings = current().settings
    try:
        user = await users.get_user(session, email)
    except users.AccountError:
        return None
    if user is None and settings.auth_auto_provision:
        user = await users.create_user(
            session,
            email,
            display_name=email.split("@")[0],
            password=None,
            role=settings.default_role,
            department=settings.default_department or None,
        )
    if user is None or not user.is_active:
        return None
    user.last_login_at = utcnow()
    await session.commit()
    return user


async def sign_out(request: Any, response: Any) -> None:
    from chainlit.auth.cookie import get_token_from_cookies

    token = get_token_from_cookies(dict(request.cookies))
    if token and (session_id := _session_id(token)):
        try:
            await current().session_store.revoke(session_id)
        except RedisError as error:
            log.warning("could not revoke session on logout: %s", error)


def _session_id(token: str) -> str:
    try:
        return str(decode_jwt(token).metadata.get("session_id", ""))
    except Exception:
        return ""


class SignedOut(Exception):
    """The session was revoked or expired, or the account was deactivated."""


async def current_principal() -> Principal:
    """The signed-in user for this message; each message also keeps the session alive."""
    if cl.user_session.get("user") is None:
        raise SignedOut("not signed in")
    return await principal_from_token(getattr(cl.context.session, "token", None) or "", touch=True)


async def principal_from_token(token: str, *, touch: bool = False) -> Principal:
    """The user behind a Chainlit sign-in token, if the sign-in still stands.

    Refused (SignedOut) when the token is invalid, its Redis session was revoked or has
    expired, or the account is missing or inactive. With Redis unreachable the session
    check is skipped (fail open) but the account check still applies. `touch` refreshes
    the session's lifetime (activity in the chat).
    """
    try:
        chainlit_user = decode_jwt(token)
    except Exception as error:
        raise SignedOut("invalid or expired sign-in") from error
    runtime = current()
    session_id = str(chainlit_user.metadata.get("session_id", ""))
    if session_id:
        store = runtime.session_store
        try:
            # touch() finds the session too: one round trip per message instead of two.
            alive = await store.touch(session_id) if touch else await store.get(session_id)
        except RedisError as error:
            log.warning("session check skipped, Redis unavailable: %s", error)
        else:
            if not alive:
                raise SignedOut("your session has ended")
    async with runtime.sessions() as session:
        try:
            user = await users.get_user(session, chainlit_user.identifier)
        except users.AccountError:
            user = None
    if user is None or not user.is_active:
        raise SignedOut("your account is not active")
    return users.principal_of(user)
