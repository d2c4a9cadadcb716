"""`copilot bench startup` on a one-file folder: real starts of `copilot serve`, timed to
an ok /healthz, with their memory, and nothing left running after each SIGTERM."""

from __future__ import annotations

from pathlib import Path

from copilot.bench.startup import run_startup_bench


def test_startup_bench_times_both_starts_and_leaves_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "policy.md").write_text("# Travel\n\nHotels: up to 180 euros a night.\n")
    lines: list[str] = []
    report = run_startup_bench(ingest=[tmp_path], say=lines.append)

    for start in (report.fresh, report.restart):
        assert 0 < start.ready_seconds < 180
        assert start.rss_mb > 50  # a Python web app with its models, not a stub
        assert start.redis_rss_mb is not None  # the embedded Redis ran, and was counted
        assert start.survivors == []
    assert report.ingested == str(tmp_path) and report.ingest_seconds
    assert report.targets["no process outlives a stop"]
    assert any("ready in" in line for line in lines)
