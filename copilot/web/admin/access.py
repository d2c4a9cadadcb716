"""Who may open the admin pages: the chat's own sign-in, then the reviewer's reach.

There is no second password: the admin pages read the same signed cookie as the chat
and check the same Redis session and account. Anonymous visitors are sent to the chat's
sign-in page; signed-in users without `admin.conversations` get 403, and so does anyone
lacking the permission a page or change needs beyond that (`Reviewer.require`). Every
change (POST) must carry the CSRF token of the sign-in and come from our own origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from copilot.review.clearance import Clearance
from copilot.review.reach import Reach
from copilot.users import Principal
from copilot.web.admin import csrf
from copilot.web.auth import SignedOut, principal_from_token
from copilot.web.runtime import current
from copilot.web.session_guard import request_token

SIGN_IN_PATH = "/chat/login"


class NeedsSignIn(Exception):
    """Nobody (or a sign-in that no longer stands) is behind the request."""


class Refused(Exception):
    """Signed in, but not allowed to do this; the message says why (shown with 403)."""


class BadInput(Exception):
    """A filter or format that makes no sense; the message names it (shown with 400)."""


@dataclass(frozen=True)
class Reviewer:
    principal: Principal
    reach: Reach
    csrf_token: str

    @property
    def sees_everyone(self) -> bool:
        return self.reach.everyone

    @property
    def clearance(self) -> Clearance:
        """What this reviewer may read of the knowledge their reviews quote."""
        return Clearance(
            self.principal, self.reach, current().settings.admin_can_read_personal_files
        )

    def require(self, permission: str, doing: str) -> None:
        """Refuse (403) unless the reviewer holds `permission`; the message names it."""
        if not self.principal.can(permission):
            raise Refused(f"{doing} needs the {permission} permission.")


async def signed_in(request: Request) -> Principal:
    """The user behind the request's sign-in; NeedsSignIn (sent to sign in) without one."""
    token = request_token(request)
    if not token:
        raise NeedsSignIn
    try:
        return await principal_from_token(token)
    except SignedOut as reason:
        raise NeedsSignIn from reason


async def reviewer(request: Request) -> Reviewer:
    """FastAPI dependency: the signed-in reviewer behind this request."""
    principal = await signed_in(request)
    token = request_token(request) or ""  # there is one: signed_in found it
    reach = Reach.of(principal)
    if reach is None:
        raise Refused("Reviewing conversations needs the admin.conversations permission.")
    _check_no_nul(request)
    if request.method == "POST":
        await check_change(request, token)
    return Reviewer(principal, reach, csrf.csrf_token(token))


async def check_change(request: Request, sign_in_token: str) -> None:
    """Refuse a change (POST) not sent by our own pages' forms for this sign-in."""
    _check_same_origin(request)
    await _check_csrf_token(request, sign_in_token)


def _check_no_nul(request: Request) -> None:
    """A NUL character cannot be stored or searched for (PostgreSQL text refuses it)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise BadInput(f"Bad filter: {name.replace(chr(0), '')}: contains a NUL character")


async def _check_csrf_token(request: Request, sign_in_token: str) -> None:
    """The change must carry the token our own pages put in their forms (or a header)."""
    sent = request.headers.get(csrf.HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get(csrf.FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not csrf.token_matches(sign_in_token, sent):
        raise Refused(
            "This change carried no valid CSRF token (send it from the admin page's own "
            "form) and was ignored."
        )


def _check_same_origin(request: Request) -> None:
    """Changes come from our own pages only (with SameSite=lax cookies, defence in depth)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Refused("This change was sent from another site and was ignored.")
