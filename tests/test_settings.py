"""Settings: one class, COPILOT_ variables, embedded defaults, and a README that lists them."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    missing = [n for n in Settings.model_fields if f"`COPILOT_{n.upper()}`" not in readme]
    assert missing == []


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/copilot.db"
    assert settings.redis_url == settings.weaviate_url == settings.elasticsearch_url == ""


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COPILOT_PORT=9001\nCOPILOT_REDIS_URL=redis://r:6379/0\n")
    monkeypatch.setenv("COPILOT_PORT", "9002")  # the environment wins over .env
    settings = Settings()
    assert settings.port == 9002 and settings.redis_url == "redis://r:6379/0"
    url = "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("COPILOT_DATABASE_URL", url)
    assert Settings().resolved_database_url == url


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPILOT_LLM_PROVIDER", "gpt-99")
    with pytest.raises(ValueError, match="llm_provider"):
        Settings()


def test_the_data_dir_is_created_private(tmp_path: Path) -> None:
    """It holds the database, indexes, uploads and secrets (issue 9: nothing world-readable)."""
    folder = Settings(data_dir=tmp_path / "nested" / "data").ensure_data_dir()
    assert folder.stat().st_mode & 0o777 == 0o700


def test_role_limits_are_typed_and_filled_from_the_general_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from copilot.state.rate_limits import Limits, RoleLimits

    monkeypatch.setenv(
        "COPILOT_RATE_LIMITS_BY_ROLE", '{"Power User": {"per_minute": 60, "daily_tokens": 9}}'
    )
    settings = Settings(rate_limit_per_minute=5, daily_message_quota=50, daily_token_quota=500)
    limits = RoleLimits.from_settings(settings)
    assert limits(frozenset({"Power User"})) == Limits(60, 50, 9)
    assert limits(frozenset({"Regular User"})) == Limits(5, 50, 500)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('{"Power Users": {"per_minute": 60}}', "unknown role 'Power Users'"),
        ('{"Power User": {"per_minutes": 60}}', "per_minutes"),
        ('{"Power User": {"per_minute": 0}}', "greater than or equal to 1"),
        ('{"Power User": {"per_minute": "lots"}}', "per_minute"),
    ],
)
def test_a_typo_in_role_limits_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str, named: str
) -> None:
    monkeypatch.setenv("COPILOT_RATE_LIMITS_BY_ROLE", value)
    with pytest.raises(ValueError, match=named):
        Settings()


def test_a_typo_in_role_limits_stops_the_cli_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from copilot.cli import app

    monkeypatch.setenv("COPILOT_RATE_LIMITS_BY_ROLE", '{"Super Admn": {"per_minute": 9}}')
    result = CliRunner().invoke(app, ["health"])
    assert result.exit_code == 1
    assert "unknown role 'Super Admn'" in result.output
