"""The ASGI app: a public /healthz, Chainlit mounted under /chat, / sends you there."""

from __future__ import annotations

import tomllib

from fastapi.testclient import TestClient

from copilot.db import migrate
from copilot.settings import Settings
from copilot.web.server import create_app, project_root


def test_healthz_and_chat_mount(sqlite_settings: Settings) -> None:
    migrate.upgrade(sqlite_settings)
    with TestClient(create_app(sqlite_settings)) as client:
        # Public: ok and nothing more (the per-backend report is /admin/health, for admins).
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}

        response = client.get("/", follow_redirects=False)
        assert response.status_code in (302, 307) and response.headers["location"] == "/chat/"

        page = client.get("/chat/")
        assert page.status_code == 200 and "<html" in page.text.lower()


def test_healthz_reports_a_down_database_with_503_and_no_details(
    sqlite_settings: Settings,
) -> None:
    # No migration: the app cannot serve. The public check says so and nothing else; the
    # reason (and its fix) is in `copilot health` and /admin/health.
    with TestClient(create_app(sqlite_settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"status": "degraded"}


def test_runtime_report_names_the_down_database_and_the_fix(sqlite_settings: Settings) -> None:
    from copilot.health import check_runtime
    from copilot.web import runtime

    with TestClient(create_app(sqlite_settings)) as client:
        report = client.portal.call(check_runtime, runtime.current())  # type: ignore[union-attr]
    database = next(c for c in report.checks if c.name == "database")
    assert not database.ok and "copilot db upgrade" in database.detail


def test_upload_limits_in_step_with_settings() -> None:
    config = tomllib.loads((project_root() / ".chainlit" / "config.toml").read_text())
    upload = config["features"]["spontaneous_file_upload"]
    assert upload["max_size_mb"] == Settings().max_upload_mb
    assert config["UI"]["name"] == "Copilot"
