"""`copilot search --as` and `copilot ask --as` act as a user under the app's own rules:
a deactivated account, or one without the permission, is refused (issue 9, finding 1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from copilot.cli import app
from copilot.db.engine import create_engine, session_factory
from copilot.db.models import Role
from copilot.settings import Settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}
    assert runner.invoke(app, ["setup", "--no-demo-admin"], env=env).exit_code == 0
    for email in ("ann@example.com", "ola@example.com"):
        added = runner.invoke(app, ["users", "add", email, "--password", "correct horse"], env=env)
        assert added.exit_code == 0, added.output
    return env


def _strip_permissions(settings: Settings, role_name: str, *names: str) -> None:
    async def body() -> None:
        engine = create_engine(settings)
        async with session_factory(engine)() as session:
            role = await session.scalar(select(Role).where(Role.name == role_name))
            assert role is not None
            role.permissions = [p for p in role.permissions if p.name not in names]
            await session.commit()
        await engine.dispose()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("command", "permission"), [("search", "search.basic"), ("ask", "chat.use")]
)
def test_acting_as_needs_the_permission(
    env: dict[str, str], tmp_path: Path, command: str, permission: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert runner.invoke(app, [command, "hotel", "--as", "ann@example.com"], env=env).exit_code == 0
    _strip_permissions(settings, "Regular User", permission)
    refused = runner.invoke(app, [command, "hotel", "--as", "ann@example.com"], env=env)
    assert refused.exit_code == 1
    assert f"lacks the {permission} permission" in refused.output


@pytest.mark.parametrize("command", ["search", "ask"])
def test_a_deactivated_account_cannot_be_acted_as(env: dict[str, str], command: str) -> None:
    assert runner.invoke(app, ["users", "deactivate", "ola@example.com"], env=env).exit_code == 0
    refused = runner.invoke(app, [command, "hotel", "--as", "ola@example.com"], env=env)
    assert refused.exit_code == 1
    assert "ola@example.com is deactivated" in refused.output
