"""Sign-in for the chat: password, a trusted SSO header, or Chainlit's OAuth providers.

Each sign-in creates a session in Redis (`session:{id}`) whose id rides in the signed
token Chainlit issues. Every request looks the session up again, so logout and
`copilot users deactivate` take effect on the very next message.

Sessions fail closed: a token without a session is refused, sign-in is refused when no
session can be stored, and while Redis is unreachable no session can be checked, so every
token is refused until it is back. A logout that cannot reach Redis says so (503) and
keeps the cookie, so the user can sign out again; a logout that answered 200 deleted the
session, and a token whose session is gone never works again.
"""

from __future__ import annotations

import logging
from typing import Any

import chainlit as cl
from chainlit.auth.jwt import decode_jwt
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db.models import User
from copilot.db.types import utcnow
from copilot.review import audit
from copilot.state.sign_in_throttle import SignInThrottled
from copilot.users import Principal
from copilot.web.proxy_trust import client_address
from copilot.web.runtime import current

log = logging.getLogger(__name__)

SESSION_STORE_DOWN = (
    "Sign-in is unavailable: the session store cannot be reached. Try again in a minute."
)
NOT_SIGNED_OUT = (
    "You are not signed out: the session store cannot be reached, so the sign-in could "
    "not be ended. Try signing out again in a minute."
)

__all__ = ["SignInThrottled", "SignInUnavailable", "SignedOut", "check_password"]


class SignInUnavailable(Exception):
    """No session can be stored or checked (Redis unreachable): sign-in is refused."""


async def _signed_in(user: User) -> cl.User:
    """A Chainlit user for an authenticated account, with a fresh Redis session."""
    principal = users.principal_of(user)
    try:
        session_id = await current().session_store.create(principal)
    except RedisError as error:
        # A token without a session could never be revoked: refuse the sign-in instead.
        log.warning("could not create a session for %s: %s", principal.email, error)
        raise SignInUnavailable(SESSION_STORE_DOWN) from error
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
    """Chainlit's password callback. Our own /chat/login route (copilot.web.sign_in_routes)
    shadows Chainlit's and calls check_password with the client address; this stays
    registered so the login page offers the password form, and is throttled per account
    should anything reach it."""
    try:
        return await check_password(email, password, client="unknown")
    except (SignInThrottled, SignInUnavailable) as refusal:
        log.warning("sign-in refused for %s: %s", email, refusal)
        return None


async def check_password(email: str, password: str, client: str) -> cl.User | None:
    """A signed-in user for the right password; None for a wrong one.

    Raises SignInThrottled after too many failures for the account or the client, and
    SignInUnavailable when Redis (throttle and sessions) cannot be reached.
    """
    runtime = current()
    try:
        attempt = await runtime.sign_in_throttle.attempt(email, client)
    except RedisError as error:
        log.warning("sign-in throttle unavailable: %s", error)
        raise SignInUnavailable(SESSION_STORE_DOWN) from error
    async with runtime.sessions() as session:
        user = await users.authenticate(session, email, password)
        if user is None:
            return None
        try:
            await runtime.sign_in_throttle.succeeded(attempt)
        except RedisError as error:
            raise SignInUnavailable(SESSION_STORE_DOWN) from error
        return await _signed_in(user)


async def header_sign_in(headers: dict[str, str]) -> cl.User | None:
    """Trusted-header SSO: the proxy in front of us has already authenticated the user.

    Only reached through our /chat/auth/header route, which first checks that the request
    came from the trusted proxy (copilot.web.proxy_trust): from anyone else the header is
    just a claim.
    """
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
    """Chainlit's OAuth providers pass through; accounts are matched by *verified* email.

    An unverified address proves nothing (anyone can type the CEO's email into a new
    account at many providers), so it never matches or provisions an account.
    """
    email = verified_email(provider_id, raw_user_data)
    if email is None:
        log.warning("OAuth sign-in through %s refused: no verified email", provider_id)
        return None
    async with current().sessions() as session:
        user = await _user_for_sso(session, email)
        return await _signed_in(user) if user is not None else None


def verified_email(provider_id: str, raw_user_data: dict[str, Any]) -> str | None:
    """The email the provider vouches for, or None when it does not say it verified it.

    GitHub lists addresses with a `verified` flag; OpenID Connect providers send
    `email_verified`; Google's v2 userinfo sends `verified_email`. Providers that send no
    flag at all (Azure AD's Graph profile) are refused: unknown means unverified.
    """
    if provider_id == "github":
        for entry in raw_user_data.get("emails") or []:
            if isinstance(entry, dict) and entry.get("primary") and entry.get("verified") is True:
                return str(entry.get("email") or "") or None
        return None
    email = str(raw_user_data.get("email") or "").strip()
    for flag in ("email_verified", "verified_email"):
        if flag in raw_user_data:
            value = raw_user_data[flag]
            verified = value is True or (isinstance(value, str) and value.lower() == "true")
            return email if verified and email else None
    return None


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


async def sign_out(request: Any, response: Any) -> dict[str, bool] | JSONResponse:
    """Chainlit's logout callback: delete the session, or say that it could not.

    Chainlit clears the cookie on the response it passes in; answering with our own
    response instead keeps the cookie, so the user is not told they left while their
    session still stands.
    """
    from chainlit.auth.cookie import get_token_from_cookies

    token = get_token_from_cookies(dict(request.cookies))
    if token and (session_id := _session_id(token)):
        try:
            ended = await current().session_store.revoke(session_id)
        except RedisError as error:
            log.warning("could not revoke a session on logout: %s", error)
            return JSONResponse({"detail": NOT_SIGNED_OUT}, status_code=503)
        if ended:
            async with current().sessions() as session:
                await audit.record_account_event(
                    session,
                    audit.SIGN_OUT,
                    email=decode_jwt(token).identifier,
                    ip=client_address(request, current().settings),
                )
    return {"success": True}


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

    Refused (SignedOut) when the token is invalid or expired, carries no session, its
    Redis session was revoked or has expired, Redis cannot be reached to check it (fail
    closed), or the account is missing or inactive. `touch` refreshes the session's
    lifetime (activity in the chat).
    """
    try:
        chainlit_user = decode_jwt(token)
    except Exception as error:
        raise SignedOut("invalid or expired sign-in") from error
    runtime = current()
    session_id = str(chainlit_user.metadata.get("session_id", ""))
    if not session_id:
        raise SignedOut("this sign-in has no session")
    store = runtime.session_store
    try:
        # touch() finds the session too: one round trip per message instead of two.
        alive = await store.touch(session_id) if touch else await store.get(session_id)
    except RedisError as error:
        log.warning("session check failed, Redis unavailable: %s", error)
        raise SignedOut(
            "the session store cannot be reached, so your sign-in cannot be checked; "
            "try again in a minute"
        ) from error
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
