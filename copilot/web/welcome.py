"""GET /chat/welcome: the lines public/copilot.js shows on the chat's first screen.

Chainlit's first screen has the logo and the starters, and no place for text of our own;
the script puts these lines under the logo (what Copilot does, and how many documents the
user may read, per scope).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from copilot.answer.about import files_by_scope, welcome_lines
from copilot.web.files import signed_in_principal
from copilot.web.runtime import current


def welcome_router(chat_path: str) -> APIRouter:
    router = APIRouter(prefix=chat_path, include_in_schema=False)

    @router.get("/welcome")
    async def welcome(request: Request) -> JSONResponse:
        principal = await signed_in_principal(request)
        runtime = current()
        counts = await files_by_scope(runtime.sessions, principal.scope)
        generated = runtime.settings.llm_provider != "extractive"
        return JSONResponse({"lines": welcome_lines(counts, generated=generated)})

    return router
