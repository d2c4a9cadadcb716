"""Our routes in front of Chainlit's sign-in: throttled passwords, the trusted SSO header,
and the login page's messages for our refusals.

Chainlit calls its auth callbacks through a wrapper that turns every exception into "no
user" (a bare 401), and gives them neither the client address nor the request. So the
outer app serves POST /chat/login and /chat/auth/header itself (its routes come before the
Chainlit mount) and hands a signed-in user to Chainlit's own `_authenticate_user`, which
sets the cookie exactly as Chainlit's routes do.

Refusals answer `{"detail": message, "code": code}` with a Retry-After where it helps.
Chainlit's login page shows the detail in its error toast, and in the form it shows
`auth.login.errors.<HTTP status text>` from its translations, to which our messages are
added under "Too Many Requests" and "Service Unavailable".
"""

from __future__ import annotations

from typing import Annotated

import chainlit as cl
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from copilot.review import audit
from copilot.web import auth
from copilot.web.proxy_trust import client_address, from_trusted_proxy
from copilot.web.runtime import current

THROTTLED = "tooManySignIns"
UNAVAILABLE = "signInUnavailable"
UNTRUSTED_PROXY = "ssoProxyNotTrusted"
THROTTLED_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. "
    "Wait a few minutes, then try again."
)
WRONG_PASSWORD = "Wrong email or password."
#: The chat's footer note when no chat model writes the answers (Chainlit's says "LLMs can
#: make mistakes").
EXTRACTIVE_NOTE = (
    "No language model here: answers quote the passages of your documents that match best, "
    "each with its source."
)
#: Chainlit's New Chat dialog says the chat history will be cleared; it stays in the sidebar.
NEW_CHAT_NOTE = "Start a new chat? This one stays in the sidebar, where you can open it again."
# Keyed by the status text the login form looks up (it shows the error's message).
LOGIN_PAGE_MESSAGES = {
    "Unauthorized": WRONG_PASSWORD,
    "Too Many Requests": THROTTLED_MESSAGE,
    "Service Unavailable": auth.SESSION_STORE_DOWN,
}
_LANGUAGE = "^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,4})?(-[a-zA-Z0-9]{2,8})?(-x-[a-zA-Z0-9]{1,8})?$"


def sign_in_router(chat_path: str) -> APIRouter:
    router = APIRouter(prefix=chat_path, include_in_schema=False)

    @router.post("/login")
    async def password_login(
        request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
    ) -> Response:
        client = client_address(request, current().settings)
        try:
            user = await auth.check_password(form.username, form.password, client)
        except auth.SignInThrottled as refusal:
            await _audit(audit.SIGN_IN_REFUSED, form.username, client, "password", "throttled")
            return _refusal(429, THROTTLED, str(refusal), retry_after=refusal.retry_after)
        except auth.SignInUnavailable as refusal:
            return _refusal(503, UNAVAILABLE, str(refusal), retry_after=30)
        if user is None:
            await _audit(audit.SIGN_IN_REFUSED, form.username, client, "password", "credentials")
        else:
            await _audit(audit.SIGN_IN, user.identifier, client, "password")
        return await _issue_token(request, user)

    @router.post("/auth/header")
    async def header_login(request: Request) -> Response:
        settings = current().settings
        if not settings.auth_header:
            raise HTTPException(400, "No header_auth_callback defined")
        if not from_trusted_proxy(request, settings):
            return _refusal(
                401,
                UNTRUSTED_PROXY,
                f"The {settings.auth_header} header is accepted only from the trusted proxy "
                "(COPILOT_TRUSTED_PROXIES / COPILOT_AUTH_PROXY_SECRET); this request did not "
                "come through it.",
            )
        try:
            user = await auth.header_sign_in(request.headers)  # type: ignore[arg-type]
        except auth.SignInUnavailable as refusal:
            return _refusal(503, UNAVAILABLE, str(refusal), retry_after=30)
        client = client_address(request, settings)
        if user is None:
            claimed = request.headers.get(settings.auth_header, "")
            refused = "unknown or inactive"
            await _audit(audit.SIGN_IN_REFUSED, claimed, client, "sso header", refused)
        else:
            await _audit(audit.SIGN_IN, user.identifier, client, "sso header")
        return await _issue_token(request, user)

    @router.get("/project/translations")
    async def translations(
        language: Annotated[str, Query(pattern=_LANGUAGE)] = "en-US",
    ) -> JSONResponse:
        """Chainlit's translations with our refusal messages added to the login errors, the
        New Chat dialog's text, and the footer note saying what extractive answers are when
        no chat model is set (in English whatever the language: these are ours)."""
        from chainlit.config import config

        translation = config.load_translation(config.ui.language or language)
        login = translation.setdefault("auth", {}).setdefault("login", {})
        login.setdefault("errors", {}).update(LOGIN_PAGE_MESSAGES)
        dialog = translation.setdefault("navigation", {}).setdefault("newChat", {})
        dialog.setdefault("dialog", {})["description"] = NEW_CHAT_NOTE
        if current().settings.llm_provider == "extractive":
            translation.setdefault("chat", {})["watermark"] = EXTRACTIVE_NOTE
        return JSONResponse({"translation": translation})

    return router


async def _audit(
    action: str, email: str, client: str | None, method: str, reason: str | None = None
) -> None:
    details = {"method": method, **({"reason": reason} if reason else {})}
    async with current().sessions() as session:
        await audit.record_account_event(session, action, email=email, ip=client, details=details)


async def _issue_token(request: Request, user: cl.User | None) -> Response:
    """Chainlit's own sign-in response: the token cookie, or 401 `credentialssignin`."""
    from chainlit.server import _authenticate_user

    return await _authenticate_user(request, user)


def _refusal(
    status_code: int, code: str, message: str, *, retry_after: int | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": message, "code": code}, status_code=status_code, headers=headers)
