"""The signed-in user's own files page (/my/files): status, size, pages, chunks, errors,
and deleting a file after a confirmation page.

Server-rendered like the admin pages (their CSS, security headers, CSRF tokens bound to
the sign-in, signed notices), but for every signed-in user and over their personal files
only (copilot.knowledge.personal_files): company and department knowledge is managed in
/admin. Deleting one's own data needs no permission beyond being its owner. The
confirmation is a page of its own, so it works without script (the policy forbids inline
script anyway) and a stray click on the listing never deletes anything.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from copilot.db.models import File
from copilot.knowledge.jobs import IN_PROGRESS, IngestProgress
from copilot.knowledge.personal_files import delete_personal_file, personal_file, personal_files
from copilot.users import Principal
from copilot.web.admin import csrf
from copilot.web.admin.access import check_change, signed_in
from copilot.web.admin.headers import AdminSecurityHeaders
from copilot.web.admin.notices import notice_of, notice_params
from copilot.web.admin.pages import ADMIN_PATH
from copilot.web.admin.pages import templates as admin_templates
from copilot.web.runtime import current
from copilot.web.session_guard import request_token

MY_PATH = "/my"
FILES_PATH = f"{MY_PATH}/files"
#: Who may open /admin, where shared knowledge is managed (the page links there).
ADMIN_PERMISSION = "admin.conversations"
#: Errors of ours or of a backend, not about the file: their text is not for users.
INTERNAL_ERROR_MARKS = ("internal error", "index refused")

router = APIRouter(prefix=FILES_PATH, include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["when"] = admin_templates.env.filters["when"]


def mount_my_files(app: FastAPI) -> None:
    """The page, with the admin pages' security headers (its names are user-written)."""
    app.add_middleware(AdminSecurityHeaders, prefix=MY_PATH)
    app.include_router(router)


def file_size(size: int) -> str:
    """ "812 bytes", "14.2 KB", "3.1 MB" (powers of 1024, as file managers show them)."""
    if size < 1024:
        return f"{size} byte" + ("" if size == 1 else "s")
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def shown_error(error: str | None) -> str:
    """What the user is told of a failure: the file's problem, never our internals."""
    if not error:
        return ""
    if any(mark in error for mark in INTERNAL_ERROR_MARKS):
        return "it could not be added; try again"
    return error


def _row(file: File) -> dict[str, Any]:
    progress = IngestProgress.of(file) if file.status in IN_PROGRESS else None
    return {
        "id": file.id,
        "name": file.original_name,
        "status": file.status,
        "percent": progress.percent if progress else None,
        "size": file_size(file.size_bytes),
        "pages": file.page_count,
        "chunks": file.chunk_count,
        "error": shown_error(file.error),
        "created_at": file.created_at,
        "deletable": file.status not in IN_PROGRESS,
    }


def _render(
    request: Request, template: str, principal: Principal, status_code: int = 200, **context: Any
) -> HTMLResponse:
    token = request_token(request) or ""
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "files_path": FILES_PATH,
            "admin_path": ADMIN_PATH if principal.can(ADMIN_PERMISSION) else None,
            "csrf_field": csrf.FIELD,
            "csrf_token": csrf.csrf_token(token),
            **context,
        },
        status_code=status_code,
    )


@router.get("")
async def files_page(request: Request) -> HTMLResponse:
    principal = await signed_in(request)
    async with current().sessions() as session:
        files = await personal_files(session, uuid.UUID(principal.user_id))
    rows = [_row(f) for f in files]
    return _render(
        request,
        "my_files.html",
        principal,
        rows=rows,
        notice=notice_of(request.query_params),
        in_progress=any(r["percent"] is not None for r in rows),
    )


@router.get("/{file_id}/delete")
async def confirm_delete(request: Request, file_id: uuid.UUID) -> HTMLResponse:
    principal = await signed_in(request)
    async with current().sessions() as session:
        file = await personal_file(session, uuid.UUID(principal.user_id), file_id)
    if file is None:
        return _render(request, "my_file_missing.html", principal, status_code=404)
    return _render(request, "my_file_delete.html", principal, file=_row(file))


@router.post("/{file_id}/delete")
async def delete(request: Request, file_id: uuid.UUID) -> Any:
    principal = await signed_in(request)
    await check_change(request, request_token(request) or "")
    outcome, name = await delete_personal_file(current().kb, uuid.UUID(principal.user_id), file_id)
    if outcome == "missing":
        return _render(request, "my_file_missing.html", principal, status_code=404)
    if outcome == "in_progress":
        notice = f"{name} is still being added; delete it once it is done."
    else:
        notice = f"Deleted {name}; it is no longer searchable."
    return _back(notice)


def _back(notice: str) -> RedirectResponse:
    return RedirectResponse(f"{FILES_PATH}?{urlencode(notice_params(notice))}", status_code=303)
