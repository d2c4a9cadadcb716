"""`copilot sources` through Typer's runner: add, list, sync (edit, delete, sync again, with
search in step with the folder), remove; and the errors a user can cause."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {"COPILOT_DATA_DIR": str(tmp_path / "data")}
    assert runner.invoke(app, ["setup"], env=environment).exit_code == 0
    return environment


def invoke(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env)


def _search(env: dict[str, str], query: str) -> list[str]:
    result = invoke(env, "search", query, "--as", "admin@example.com", "--json")
    assert result.exit_code == 0, result.output
    return [hit["snippet"] for hit in json.loads(result.stdout)["hits"]]


def test_add_sync_edit_delete_sync_remove(env: dict[str, str], tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "travel").mkdir(parents=True)
    (share / "travel" / "flights.md").write_text("# Flights\n\nBook economy class always.\n")
    (share / "hotels.md").write_text("# Hotels\n\nHotels are refunded up to 150 euros.\n")

    added = invoke(env, "sources", "add", "folder", str(share), "--name", "hr", "--tag", "hr")
    assert added.exit_code == 0, added.output
    assert f"added hr: {share.resolve()} (company, internal)" in added.stdout
    listed = invoke(env, "sources", "list")
    assert "never synced" in listed.stdout

    synced = invoke(env, "sources", "sync", "hr")
    assert synced.exit_code == 0, synced.output
    assert "sync succeeded: 2 added, 0 updated, 0 deleted, 0 unchanged, 0 failed" in synced.stdout
    assert any("economy class" in s for s in _search(env, "economy class flights"))

    (share / "travel" / "flights.md").write_text("# Flights\n\nBook business class now.\n")
    later = time.time() + 5
    os.utime(share / "travel" / "flights.md", (later, later))
    (share / "hotels.md").unlink()
    synced = invoke(env, "sources", "sync", "hr", "--full")
    assert "0 added, 1 updated, 1 deleted, 0 unchanged, 0 failed" in synced.stdout

    snippets = _search(env, "economy business class flights hotels refunded")
    assert any("business class" in s for s in snippets)
    assert not any("economy class" in s or "150 euros" in s for s in snippets)
    [row] = json.loads(invoke(env, "sources", "list", "--json").stdout)
    assert row["files"] == 1 and row["tags"] == ["hr"]
    assert (row["last_job"]["status"], row["last_job"]["full"]) == ("succeeded", True)

    removed = invoke(env, "sources", "remove", "hr")
    assert removed.exit_code == 0 and "removed hr and its 1 files" in removed.stdout
    assert _search(env, "business class flights") == []


def test_errors_name_the_problem(env: dict[str, str], tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "empty.md").touch()
    missing = invoke(env, "sources", "add", "folder", str(tmp_path / "nope"), "--name", "x")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    department = invoke(
        env, "sources", "add", "folder", str(share), "--name", "x", "--scope", "department"
    )
    assert department.exit_code == 1 and "needs --department CODE" in department.output
    assert invoke(env, "sources", "add", "folder", str(share), "--name", "x").exit_code == 0
    again = invoke(env, "sources", "add", "folder", str(share), "--name", "x")
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = invoke(env, "sources", "sync", "y")
    assert unknown.exit_code == 1 and "no data source named 'y' (sources: x)" in unknown.output
    partial = invoke(env, "sources", "sync", "x")
    assert partial.exit_code == 1 and "sync partial: 0 added" in partial.stdout
    assert "empty.md" in partial.stdout and "is empty" in partial.stdout
