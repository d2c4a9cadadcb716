"""The admin pages (/admin): conversation review, feedback triage, export, analytics,
knowledge files, users and the audit log, served by the same app as the chat.

Built on FastAPI routes and Jinja2 templates over `copilot.review`. sqladmin and
starlette-admin were considered: their generic model lists would cover the users and
audit tables only, while every page here must carry the reviewer's department reach into
its query and write an audit entry, and the transcript, triage, export and analytics
views are custom either way.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from copilot.review.people import NotAllowed
from copilot.web.admin.access import SIGN_IN_PATH, BadInput, NeedsSignIn, Refused
from copilot.web.admin.headers import AdminSecurityHeaders
from copilot.web.admin.pages import ADMIN_PATH, router, templates


def mount_admin(app: FastAPI) -> None:
    app.add_middleware(AdminSecurityHeaders, prefix=ADMIN_PATH)
    app.include_router(router)
    app.mount(
        f"{ADMIN_PATH}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="admin-static",
    )

    @app.exception_handler(NeedsSignIn)
    async def _sign_in_first(request: Request, _: NeedsSignIn) -> Response:
        # The chat's sign-in page hands `next` to public/copilot.js, which comes back here.
        return RedirectResponse(f"{SIGN_IN_PATH}?next={quote(request.url.path)}", status_code=303)

    # A change the review layer refuses (outside the admin's reach or rights) is a 403
    # with its reason, like any other refusal.
    @app.exception_handler(Refused)
    @app.exception_handler(NotAllowed)
    async def _refused(request: Request, error: Exception) -> Response:
        return _explain(request, str(error), 403)

    @app.exception_handler(BadInput)
    async def _bad_input(request: Request, error: BadInput) -> Response:
        return _explain(request, str(error), 400)


def _explain(request: Request, reason: str, status_code: int) -> Response:
    return templates.TemplateResponse(
        request,
        "refused.html",
        {"who": None, "admin_path": ADMIN_PATH, "reason": reason},
        status_code=status_code,
    )
