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
