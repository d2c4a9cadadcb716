"""`GET /files/{id}`: the original of a cited source (a PDF opens at its page in the chat).

The same access rule as search applies: only someone whose scope allows the file gets it,
and only with ``documents.read``. The bytes are whatever someone uploaded, served from the
app's own origin, so nothing of them may run there: a PDF is shown inline (the chat's
viewer), everything else is a download (``documents.download``) that the browser saves
instead of rendering, with ``nosniff`` and a sandboxing policy in case it renders anyway.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from copilot import users
from copilot.db.models import File
from copilot.knowledge.access import file_access
from copilot.web.auth import SignedOut, principal_from_token
from copilot.web.runtime import current
from copilot.web.session_guard import request_token

router = APIRouter()

PDF_MIME = "application/pdf"
#: Downloads: no script, no plugin, no network, a unique origin if a browser renders one.
ATTACHMENT_POLICY = "sandbox; default-src 'none'"
#: The inline PDF: Chromium refuses to start its PDF viewer in a sandboxed document (the
#: viewer's "Print" opens the file in a tab); the chat's pdf.js fetches the bytes, to which
#: a policy does not apply.
PDF_POLICY = "default-src 'none'; object-src 'self'; frame-ancestors 'self'"
_UNSAFE_IN_QUOTED_NAME = re.compile(r'[^\x20-\x7e]|["\\]')


async def signed_in_principal(request: Request) -> users.Principal:
    """The user behind the chat's sign-in (401 without a standing one)."""
    token = request_token(request)
    if not token:
        raise HTTPException(401, "sign in first")
    try:
        return await principal_from_token(token)
    except SignedOut as reason:
        raise HTTPException(401, f"sign in again: {reason}") from reason


def require(principal: users.Principal, permission: str, action: str) -> None:
    """403 naming the permission the user lacks."""
    if not principal.can(permission):
        raise HTTPException(403, f"you need the {permission} permission to {action}")


@router.get("/files/{file_id}", include_in_schema=False)
async def original_file(file_id: uuid.UUID, request: Request) -> FileResponse:
    principal = await signed_in_principal(request)
    require(principal, "documents.read", "open documents")
    async with current().sessions() as session:
        file = await session.get(File, file_id)
    if file is None or file.status != "ready":
        raise HTTPException(404, "no such file")
    if not principal.scope.allows(file_access(file)):
        raise HTTPException(404, "no such file")  # never confirm that a hidden file exists
    inline = file.mime_type == PDF_MIME
    if not inline:
        require(principal, "documents.download", "download this file")
    path = Path(file.storage_path)
    if not path.is_file():
        raise HTTPException(410, "the original file is no longer stored")
    return FileResponse(
        path,
        media_type=PDF_MIME if inline else "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(
                "inline" if inline else "attachment", file.original_name
            ),
            "Content-Security-Policy": PDF_POLICY if inline else ATTACHMENT_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )


def content_disposition(disposition: str, filename: str) -> str:
    """The header for any file name: an ASCII fallback, and the exact name (RFC 6266/5987).

    Quotes, backslashes, control characters and non-ASCII never reach the quoted fallback,
    and the ``filename*`` form is percent-encoded, so no name can end the header early.
    """
    fallback = _UNSAFE_IN_QUOTED_NAME.sub("_", filename).strip() or "download"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
