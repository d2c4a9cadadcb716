"""Who may open the admin pages: the chat's own sign-in, then the reviewer's reach.

There is no second password: the admin pages read the same signed cookie as the chat
and check the same Redis session and account. Anonymous visitors are sent to the chat's
sign-in page; signed-in users without `admin.conversations` get 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from copilot.review.reach import Reach
from copilot.users import Principal
from copilot.web.auth import SignedOut, principal_from_token
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

    @property
    def sees_everyone(self) -> bool:
        return self.reach.everyone


async def reviewer(request: Request) -> Reviewer:
    """FastAPI dependency: the signed-in reviewer behind this request."""
    token = request_token(request)
    if not token:
        raise NeedsSignIn
    try:
        principal = await principal_from_token(token)
    except SignedOut as reason:
        raise NeedsSignIn from reason
    reach = Reach.of(principal)
    if reach is None:
        raise Refused("Reviewing conversations needs the admin.conversations permission.")
    if request.method == "POST":
        _check_same_origin(request)
    return Reviewer(principal, reach)


def _check_same_origin(request: Request) -> None:
    """Changes come from our own pages only (with SameSite=lax cookies, defence in depth)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Refused("This change was sent from another site and was ignored.")
