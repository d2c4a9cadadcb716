"""`copilot bench admin` on a small scale: it seeds what it says and measures real work.

No timing is asserted (speed goals live in the benchmark's own output); the test checks
that the seeded data, the listings and the export counts are what the seed implies.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from copilot.bench.admin import FILTERS, MESSAGES_PER_CHAT, run_admin_bench
from copilot.settings import Settings


async def test_bench_admin_seeds_lists_and_exports(
    postgres_server_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_server_url)
    lines: list[str] = []
    report = await run_admin_bench(settings, users=10, chats_per_user=3, runs=2, say=lines.append)
    assert (report.users, report.chats, report.messages) == (10, 30, 30 * MESSAGES_PER_CHAT)
    super_admin = [t for t in report.listings if t.reach == "Super Admin"]
    assert {t.name for t in super_admin} == set(FILTERS)
    unfiltered = next(t for t in super_admin if t.name == "no filter")
    assert unfiltered.rows == 30 and unfiltered.runs == 2 and unfiltered.p95_ms > 0
    # Users are spread over the five departments in turn: ENG has 2 of the 10.
    assert report.export_messages == 2 * 3 * MESSAGES_PER_CHAT
    assert report.export_filter == {"department": "ENG"}
    assert set(report.targets) == {"list p95 <= 200 ms", "export >= 20,000 messages/s"}
    # The scratch database is gone afterwards.
    with psycopg.connect(postgres_server_url.replace("+psycopg", ""), autocommit=True) as db:
        left = db.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (report.database,)
        ).fetchone()
    assert left is not None and left[0] == 0


async def test_bench_admin_refuses_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COPILOT_TEST_POSTGRES_URL", raising=False)
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        await run_admin_bench(Settings(data_dir=tmp_path / "data"))
