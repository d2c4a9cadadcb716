"""The ASGI app: /healthz per backend, Chainlit mounted under /chat, / sends you there."""

from __future__ import annotations

import tomllib

from fastapi.testclient import TestClient

from copilot.db import migrate
from copilot.settings import Settings
from copilot.web.server import create_app, project_root


def test_healthz_and_chat_mount(sqlite_settings: Settings) -> None:
    migrate.upgrade(sqlite_settings)
    with TestClient(create_app(sqlite_settings)) as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert {c["name"] for c in body["checks"]} >= {"database", "redis"}

        response = client.get("/", follow_redirects=False)
        assert response.status_code in (302, 307) and response.headers["location"] == "/chat/"

        page = client.get("/chat/")
        assert page.status_code == 200 and "<html" in page.text.lower()


def test_healthz_reports_down_database_with_503(sqlite_settings: Settings) -> None:
    # No migration: the database check fails and names the fix.
    with TestClient(create_app(sqlite_settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    database = next(c for c in response.json()["checks"] if c["name"] == "database")
    assert not database["ok"] and "copilot db upgrade" in database["detail"]


def test_upload_limits_in_step_with_settings() -> None:
    config = tomllib.loads((project_root() / ".chainlit" / "config.toml").read_text())
    upload = config["features"]["spontaneous_file_upload"]
    assert upload["max_size_mb"] == Settings().max_upload_mb
    assert config["UI"]["name"] == "Copilot"
