"""Every `copilot` command through Typer's runner, with the exit codes scripts rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot.cli import app
from copilot.db import migrate
from copilot.settings import Settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"COPILOT_DATA_DIR": str(tmp_path / "data")}


def invoke(env: dict[str, str], *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env, input=input)


def test_help_everywhere(env: dict[str, str]) -> None:
    for command in ([], ["db"], ["users"], ["health"], ["setup"], ["serve"], ["users", "add"]):
        result = invoke(env, *command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_db_commands(env: dict[str, str]) -> None:
    result = invoke(env, "db", "current")
    assert result.exit_code == 3 and "database: empty" in result.output
    result = invoke(env, "db", "upgrade")
    head = migrate.head_revision(Settings())
    assert result.exit_code == 0 and f"database at {head}" in result.output
    assert invoke(env, "db", "current").exit_code == 0
    result = invoke(env, "db", "seed")
    assert result.exit_code == 0 and "5 roles" in result.output
    result = invoke(env, "db", "seed")
    assert result.exit_code == 0 and "0 departments, 0 permissions, 0 roles" in result.output
    result = invoke(env, "db", "downgrade", "base")
    assert result.exit_code == 0 and "database at base" in result.output
    result = invoke(env, "db", "downgrade", "nonsense")
    assert result.exit_code == 1 and "downgrade failed" in result.output


def test_seed_before_upgrade_says_what_to_do(env: dict[str, str]) -> None:
    result = invoke(env, "db", "seed")
    assert result.exit_code == 1 and "copilot db upgrade" in result.output


def test_users_commands(env: dict[str, str]) -> None:
    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    result = invoke(
        env,
        "users",
        "add",
        "Ann@Example.com",
        "--name",
        "Ann",
        "--department",
        "eng",
        "--role",
        "power user",
        "--password",
        "correct horse",
    )
    assert result.exit_code == 0, result.output
    result = invoke(env, "users", "add", "bob@example.com", input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output

    listed = invoke(env, "users", "list").output.splitlines()
    assert listed == [
        "ann@example.com\tAnn\tENG\tPower User\tactive",
        "bob@example.com\tbob\t-\tRegular User\tactive",
    ]
    assert invoke(env, "users", "set-role", "bob@example.com", "Read Only").exit_code == 0
    assert invoke(env, "users", "deactivate", "ann@example.com").exit_code == 0
    listed = invoke(env, "users", "list").output.splitlines()
    assert listed[0].endswith("inactive") and "Read Only" in listed[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "ann@example.com", "--password", "correct horse"], "already exists"),
        (["users", "add", "not-an-email", "--password", "correct horse"], "not an email"),
        (["users", "add", "c@example.com", "--password", "short"], "at least 8"),
        (
            ["users", "add", "c@example.com", "--password", "long enough", "--role", "King"],
            "no role named 'King'",
        ),
        (
            ["users", "add", "c@example.com", "--password", "long enough", "--department", "XX"],
            "no department with code 'XX'",
        ),
        (["users", "set-role", "nobody@example.com", "Read Only"], "no user with email"),
        (["users", "deactivate", "nobody@example.com"], "no user with email"),
    ],
)
def test_users_errors(env: dict[str, str], args: list[str], message: str) -> None:
    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    invoke(env, "users", "add", "ann@example.com", "--password", "correct horse")
    result = invoke(env, *args)
    assert result.exit_code == 1
    assert message in result.output


def test_setup_is_idempotent_and_keeps_the_demo_password(env: dict[str, str]) -> None:
    first = invoke(env, "setup")
    second = invoke(env, "setup")
    assert first.exit_code == second.exit_code == 0
    line = next(x for x in first.output.splitlines() if x.startswith("demo admin"))
    assert line in second.output
    password = line.split(" / ")[1].split()[0]
    assert len(password) >= 12


def test_serve_refuses_an_unmigrated_database(env: dict[str, str]) -> None:
    result = invoke(env, "serve")
    assert result.exit_code == 1 and "copilot setup" in result.output


def test_health_embedded(env: dict[str, str]) -> None:
    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    result = invoke(env, "health", "--json")
    report = json.loads(result.stdout)  # a model loading may report progress on stderr
    assert result.exit_code == 0, result.output
    assert report["status"] == "ok"
    assert {c["name"] for c in report["checks"]} >= {"database", "redis", "embeddings"}
    assert all(c["latency_ms"] >= 0 for c in report["checks"])


def test_health_unmigrated_database_is_down(env: dict[str, str]) -> None:
    result = invoke(env, "health")
    assert result.exit_code == 1
    assert "run copilot db upgrade" in result.output and "status: down" in result.output


@pytest.mark.postgres
@pytest.mark.redis
def test_health_against_real_postgres_and_redis(
    env: dict[str, str], postgres_url: str, redis_url: str
) -> None:
    env = {**env, "COPILOT_DATABASE_URL": postgres_url, "COPILOT_REDIS_URL": redis_url}
    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    result = invoke(env, "health", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 0, result.output
    assert checks["database"]["ok"] and "postgresql" in checks["database"]["detail"]
    assert checks["redis"]["ok"] and "127.0.0.1:6379" in checks["redis"]["detail"]


@pytest.mark.postgres
def test_health_dead_database_port(env: dict[str, str], postgres_server_url: str) -> None:
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/copilot"
    result = invoke({**env, "COPILOT_DATABASE_URL": dead}, "health")
    assert result.exit_code == 1
    assert "database" in result.output and "DOWN" in result.output
    assert "Connection refused" in result.output or "connection failed" in result.output


@pytest.mark.redis
def test_health_dead_redis_port_is_down(env: dict[str, str], redis_url: str) -> None:
    # Redis is required: without it no session can be stored or checked (they fail closed).
    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    result = invoke({**env, "COPILOT_REDIS_URL": "redis://127.0.0.1:1/0"}, "health")
    assert result.exit_code == 1
    redis_line = next(line for line in result.output.splitlines() if line.startswith("redis"))
    assert "DOWN" in redis_line and "status: down" in result.output


def test_reindex_all_refuses_while_another_rebuild_runs(
    env: dict[str, str], tmp_path: Path
) -> None:
    import fcntl

    assert invoke(env, "setup", "--no-demo-admin").exit_code == 0
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    with (data / "keyword.rebuild.lock").open("ab") as held:  # as a running rebuild holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        result = invoke(env, "reindex", "--all")
    assert result.exit_code == 1
    assert "another `copilot reindex --all` is rebuilding" in result.output
    assert "search still uses the indexes as they were" in result.output
    assert invoke(env, "reindex", "--all").exit_code == 0


def test_ingest_reports_every_file_in_order_and_exits_1_for_a_failed_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Each file of a folder is reported, in the folder's order."""
    assert invoke(env, "setup").exit_code == 0
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe Lisbon office opens at nine on weekdays.")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "c.txt").write_text("Invoices are paid within thirty days of delivery.")
    result = invoke(env, "ingest", str(folder))
    assert result.exit_code == 1, result.output
    said = [line.split(":")[0] for line in result.stdout.splitlines() if ":" in line]
    assert said == ["indexed a.md", "failed b.png", "indexed c.txt"]
    assert "2 indexed (2 chunks), 0 duplicate, 1 failed" in result.stdout
    listed = json.loads(invoke(env, "files", "list", "--json").stdout)
    assert sorted((row["name"], row["status"]) for row in listed) == [
        ("a.md", "ready"),
        ("b.png", "failed"),
        ("c.txt", "ready"),
    ]


def test_bench_tables_line_their_columns_up(capsys: pytest.CaptureFixture[str]) -> None:
    from copilot.cli.tables import Column, echo_table

    echo_table(
        [Column.left("file", 8), Column("pages", 6), Column("s", 7, ".1f")],
        [("a.docx", 12, 3.14159), ("b.md", "-", 20.0)],
    )
    assert capsys.readouterr().out.splitlines() == [
        "file     pages      s",
        "a.docx      12    3.1",
        "b.md         -   20.0",
    ]
