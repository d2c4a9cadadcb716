"""`GET /files/{id}`: the original of a cited source (a PDF opens at its page in the chat).

The same access rule as search applies: only someone whose scope allows the file gets it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from copilot import users
from copilot.db.models import File
from copilot.search.scope import ChunkAccess
from copilot.web.auth import SignedOut, principal_from_token
from copilot.web.runtime import current
from copilot.web.session_guard import request_token

router = APIRouter()


async def signed_in_principal(request: Request) -> users.Principal:
    """The user behind the chat's sign-in (401 without a standing one)."""
    token = request_token(request)
    if not token:
        raise HTTPException(401, "sign in first")
    try:
        return await principal_from_token(token)
    except SignedOut as reason:
        raise HTTPException(401, f"sign in again: {reason}") from reason


@router.get("/files/{file_id}", include_in_schema=False)
async def original_file(file_id: uuid.UUID, request: Request) -> FileResponse:
    principal = await signed_in_principal(request)
    async with current().sessions() as session:
        file = await session.get(File, file_id)
    if file is None or file.status != "ready":
        raise HTTPException(404, "no such file")
    access = ChunkAccess(
        str(file.owner_id),
        file.scope,
        str(file.department_id) if file.department_id else None,
        file.classification,
    )
    if not principal.scope.allows(access):
        raise HTTPException(404, "no such file")  # never confirm that a hidden file exists
    path = Path(file.storage_path)
    if not path.is_file():
        raise HTTPException(410, "the original file is no longer stored")
    return FileResponse(
        path,
        media_type=file.mime_type,
        filename=file.original_name,
        content_disposition_type="inline",
    )
