"""The one ASGI app: FastAPI serving `/healthz` and `/admin`, with Chainlit mounted.

Chainlit's own server shadows GET routes added to it with a catch-all route, so we mount
it inside our app with `chainlit.utils.mount_chainlit` and keep our routes in front.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from copilot.health import check_all
from copilot.settings import Settings
from copilot.web import runtime
from copilot.web.admin import mount_admin
from copilot.web.files import router as files_router
from copilot.web.secrets import jwt_secret
from copilot.web.session_guard import SessionGuard

CHAT_PATH = "/chat"


def project_root() -> Path:
    """The folder holding app.py, chainlit.md, public/ and .chainlit/ (see copilot.web)."""
    root = Path(os.environ["CHAINLIT_APP_ROOT"])
    if not (root / "app.py").exists():
        raise FileNotFoundError(f"cannot find app.py in {root}")
    return root


def create_app(settings: Settings) -> FastAPI:
    app_runtime = runtime.Runtime.build(settings)
    runtime.install(app_runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await app_runtime.start()
        yield
        await app_runtime.close()

    app = FastAPI(title="Copilot", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(SessionGuard, prefix=CHAT_PATH)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        report = await check_all(settings)
        return JSONResponse(
            {"status": report.status, "checks": [c.as_dict() for c in report.checks]},
            status_code=503 if report.status == "down" else 200,
        )

    app.include_router(files_router)
    mount_admin(app)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(CHAT_PATH + "/")

    _mount_chat(app, settings)
    return app


def _mount_chat(app: FastAPI, settings: Settings) -> None:
    root = project_root()
    # Chainlit signs sign-in tokens with CHAINLIT_AUTH_SECRET.
    os.environ["CHAINLIT_AUTH_SECRET"] = jwt_secret(settings)
    import chainlit
    import chainlit.data
    from chainlit.server import app as chainlit_app
    from chainlit.utils import mount_chainlit

    # Chainlit's PDF viewer asks for its worker at /assets/ even when mounted under /chat.
    assets = Path(chainlit.__file__).parent / "frontend" / "dist" / "assets"
    app.mount("/assets", StaticFiles(directory=assets), name="chainlit-assets")
    # Chainlit's app is a process-wide singleton: load app.py into it once, then mount
    # the same app into any later FastAPI app (tests build several). Its data layer is
    # cached per process too: drop it so the next request builds one on this runtime.
    chainlit.data._data_layer = None
    chainlit.data._data_layer_initialized = False
    if getattr(chainlit_app.state, "copilot_loaded", False):
        app.mount(CHAT_PATH, chainlit_app)
        return
    mount_chainlit(app=app, target=str(root / "app.py"), path=CHAT_PATH)
    chainlit_app.state.copilot_loaded = True
