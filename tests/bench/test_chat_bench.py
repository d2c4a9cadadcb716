"""`copilot bench chat --ingest FILE` on a tiny run: the chat load measured alone, then again
while the app's own ingestion queue ingests the file, with the ingestion covering the load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot.bench.ingesting import IngestionUnderLoad, IngestRound
from copilot.cli import app


def _upload(folder: Path) -> Path:
    folder.mkdir()
    notes = folder / "notes.md"
    notes.write_text(
        "# Sensors\n\n"
        + "\n\n".join(f"Sensor {i} in hall {i % 7} reported {i} degrees." for i in range(200))
    )
    return notes


def test_chat_is_measured_alone_then_while_the_queue_ingests_the_file(
    tmp_path: Path, bench_env: dict[str, str]
) -> None:
    upload = _upload(tmp_path / "files")
    command = ["bench", "chat", "--users", "3", "--messages", "3", "--think", "0.5"]
    result = CliRunner().invoke(app, [*command, "--ingest", str(upload), "--json"], env=bench_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for run in (report, report["while_ingesting"]):
        assert run["messages"] == 9 and run["errors"] == 0, run["error_examples"]
        assert 0 < run["ttft_p50_ms"] <= run["ttft_p95_ms"] <= run["answer_p95_ms"]
    assert report["ratios"]["ttft_p95"] == pytest.approx(
        report["while_ingesting"]["ttft_p95_ms"] / report["ttft_p95_ms"], abs=0.01
    )
    ingestion = report["ingestion"]
    assert ingestion["files"] == ["notes.md"]
    chunks = ingestion["alone"]["chunks"]
    assert chunks > 1 and ingestion["chunks_per_second_alone"] > 0
    # Round after round of the same file, so the ingestion outlasts the load.
    assert ingestion["rounds"] and all(r["chunks"] == chunks for r in ingestion["rounds"])
    assert ingestion["load_seconds"] > 0
    assert ingestion["overlap"] >= 0.5
    assert report["target_met"] is None  # 3 users, not the 50 the target names


def test_the_text_report_prints_both_runs_the_ratios_and_the_overlap(
    tmp_path: Path, bench_env: dict[str, str]
) -> None:
    upload = _upload(tmp_path / "files")
    command = ["bench", "chat", "--users", "2", "--messages", "2", "--ingest", str(upload)]
    result = CliRunner().invoke(app, command, env=bench_env)
    assert result.exit_code == 0, result.output
    assert "chat alone" in result.output and "while ingesting" in result.output
    assert "while ingesting / alone: ttft_p50" in result.output
    assert "overlap: an ingestion ran during" in result.output
    assert "concurrent chats while ingesting: not measured" in result.output


def test_a_missing_upload_is_refused_before_the_app_starts(bench_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["bench", "chat", "--ingest", "nowhere.docx"], env=bench_env)
    assert result.exit_code != 0
    assert "no such file: nowhere.docx" in result.output


def test_overlap_is_the_share_of_the_load_window_with_a_round_running() -> None:
    alone = IngestRound(chunks=100, started=0.0, ended=10.0)
    rounds = [IngestRound(100, 95.0, 120.0), IngestRound(100, 121.0, 141.0)]
    figures = IngestionUnderLoad(["a.docx"], alone, rounds, load_started=100.0, load_ended=140.0)
    assert figures.overlap == pytest.approx((20 + 19) / 40)
    assert figures.rounds_share_under_load == pytest.approx(39 / 45)
    assert figures.chunks_per_second_alone == 10.0
    assert figures.chunks_per_second_under_load == pytest.approx(200 / 45)
