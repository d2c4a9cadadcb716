"""`GET /files/{id}`: the original of a cited source (a PDF opens at its page in the chat).

The same access rule as search applies: only someone whose scope allows the file gets it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from chainlit.auth.cookie import get_token_from_cookies
from chainlit.auth.jwt import decode_jwt
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from copilot import users
from copilot.db.models import File
from copilot.search.scope import ChunkAccess
from copilot.web.runtime import current

router = APIRouter()


async def signed_in_principal(request: Request) -> users.Principal:
    """The user behind the chat's sign-in cookie (401 without one)."""
    token = get_token_from_cookies(dict(request.cookies))
    if not token:
        authorization = request.headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip() or None
    if not token:
        raise HTTPException(401, "sign in first")
    try:
        email = decode_jwt(token).identifier
    except Exception as error:
        raise HTTPException(401, "your sign-in has expired; sign in again") from error
    async with current().sessions() as session:
        user = await users.get_user(session, email)
        if user is None or not user.is_active:
            raise HTTPException(401, "your account is not active")
        return users.principal_of(user)


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
