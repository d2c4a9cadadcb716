"""The one ASGI app: FastAPI serving `/healthz` and `/admin`, with Chainlit mounted.

Chainlit's own server shadows GET routes added to it with a catch-all route, so we mount
it inside our app with `chainlit.utils.mount_chainlit` and keep our routes in front (our
sign-in routes among them, see copilot.web.sign_in_routes).

Settings that would leave the app open (a default signing secret, an SSO header anyone
may send, an origin that is not a URL) refuse to start, with a message naming the fix.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from copilot import users
from copilot.health import liveness
from copilot.settings import Settings
from copilot.web import runtime
from copilot.web.admin import mount_admin, syncing
from copilot.web.admin_health import router as admin_health_router
from copilot.web.chat_export import router as chat_export_router
from copilot.web.files import router as files_router
from copilot.web.gone_polls import GonePolls
from copilot.web.my_files import mount_my_files
from copilot.web.offline_page import OfflinePage
from copilot.web.origin_guard import OriginGuard, OriginPolicy
from copilot.web.proxy_trust import check_proxy_settings
from copilot.web.secrets import jwt_secret
from copilot.web.session_guard import SessionGuard
from copilot.web.sign_in_routes import sign_in_router
from copilot.web.welcome import welcome_router

CHAT_PATH = "/chat"


def project_root() -> Path:
    """The folder holding app.py, chainlit.md, public/ and .chainlit/ (see copilot.web)."""
    root = Path(os.environ["CHAINLIT_APP_ROOT"])
    if not (root / "app.py").exists():
        raise FileNotFoundError(f"cannot find app.py in {root}")
    return root


def create_app(settings: Settings) -> FastAPI:
    """The app; raises ValueError, naming the setting, when the settings are unsafe."""
    secret = jwt_secret(settings)
    check_proxy_settings(settings)
    origins = OriginPolicy.from_settings(settings)
    app_runtime = runtime.Runtime.build(settings)
    runtime.install(app_runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await app_runtime.start()
            # Hash the dummy password now, so the first unknown email is not slower than a
            # wrong password (it would tell that the account does not exist).
            await asyncio.to_thread(users.dummy_password_hash)
            yield
        finally:  # every exit path stops what start() started (the embedded Redis too)
            await syncing.stop_all()  # syncs started from /admin/sources, first
            await app_runtime.close()

    app = FastAPI(title="Copilot", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(GonePolls, path=f"{CHAT_PATH}/ws/socket.io")  # innermost
    app.add_middleware(OfflinePage, prefix=CHAT_PATH)
    app.add_middleware(SessionGuard, prefix=CHAT_PATH)
    app.add_middleware(OriginGuard, prefix=CHAT_PATH, policy=origins)  # outermost

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Public liveness: ok or degraded, nothing more (details: /admin/health)."""
        if await liveness(app_runtime):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "degraded"}, status_code=503)

    app.include_router(files_router)
    app.include_router(chat_export_router)
    app.include_router(admin_health_router)
    app.include_router(sign_in_router(CHAT_PATH))
    app.include_router(welcome_router(CHAT_PATH))
    mount_admin(app)
    mount_my_files(app)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(CHAT_PATH + "/")

    @app.get("/share/{chat_id}", include_in_schema=False)
    async def shared_chat(chat_id: uuid.UUID) -> RedirectResponse:
        """Chainlit's share dialog links <origin>/share/<id>, leaving out where it is mounted."""
        return RedirectResponse(f"{CHAT_PATH}/share/{chat_id}")

    _mount_chat(app, secret, origins)
    return app


def _mount_chat(app: FastAPI, secret: str, origins: OriginPolicy) -> None:
    root = project_root()
    # Chainlit signs sign-in tokens with CHAINLIT_AUTH_SECRET.
    os.environ["CHAINLIT_AUTH_SECRET"] = secret
    import chainlit
    import chainlit.data
    from chainlit.server import app as chainlit_app
    from chainlit.server import sio
    from chainlit.utils import mount_chainlit

    # Chainlit creates its socket.io server with CORS handling off (any Origin connects).
    sio.eio.cors_allowed_origins = origins.engineio_allows

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
