"""`copilot bench ingest` end to end on small files: figures for each file, the stage
breakdown, the ratio to the model alone; a file that cannot be read fails the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot.bench.ingest import STAGES
from copilot.cli import app
from tests.conftest import FIXTURES


def _notes(folder: Path) -> list[Path]:
    folder.mkdir()
    notes = folder / "notes.md"
    notes.write_text(
        "# Travel\n\n"
        + "\n\n".join(f"Trip {i} to Porto is booked by the office." for i in range(60))
    )
    log = folder / "log.txt"
    log.write_text(
        "\n\n".join(f"Sensor {i} reported a temperature of {i} degrees." for i in range(30))
    )
    return [notes, log]


def test_each_file_gets_rates_stages_and_the_ratio_to_the_model(
    tmp_path: Path, bench_env: dict[str, str]
) -> None:
    paths = _notes(tmp_path / "files")
    if FIXTURES.exists():
        paths.append(FIXTURES / "pdf_multi-column.pdf")
    result = CliRunner().invoke(
        app, ["bench", "ingest", *map(str, paths), "--raw-sample", "16", "--json"], env=bench_env
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f["name"] for f in report["files"]] == [p.name for p in paths]
    for figures in report["files"]:
        assert figures["outcome"] == "indexed" and figures["chunks"] > 1
        assert figures["chunks_per_second"] == pytest.approx(
            figures["chunks"] / figures["seconds"], rel=0.05
        )
        assert set(figures["stage_seconds"]) == set(STAGES)
        assert figures["stage_seconds"]["embed"] > 0 and figures["stage_seconds"]["parse"] > 0
        assert figures["raw_sample"] == min(16, figures["chunks"])
        assert figures["raw_chunks_per_second"] > 0
        assert 0 < figures["embedding_share"] <= 1
        assert figures["pipeline_to_raw"] == pytest.approx(
            figures["chunks_per_second"] / figures["raw_chunks_per_second"], rel=0.05
        )
    text_files = report["files"][:2]
    assert all(f["pages"] is None and f["pages_per_second"] is None for f in text_files)
    if FIXTURES.exists():
        pdf = report["files"][2]
        assert pdf["pages"] == 13
        assert pdf["pages_per_second"] == pytest.approx(13 / pdf["seconds"], rel=0.05)


def test_the_table_names_its_columns_and_a_failed_file_fails_the_run(
    tmp_path: Path, bench_env: dict[str, str]
) -> None:
    notes, _ = _notes(tmp_path / "files")
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    result = CliRunner().invoke(
        app, ["bench", "ingest", str(notes), str(picture), "--raw-sample", "8"], env=bench_env
    )
    assert result.exit_code == 1, result.output
    assert "pages/s" in result.stdout and "chunks/s" in result.stdout and "ratio" in result.stdout
    assert "language" in result.stdout and "embed share" in result.stdout
    assert "picture.png: failed:" in result.stdout


def test_a_missing_file_is_named(tmp_path: Path, bench_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["bench", "ingest", str(tmp_path / "nothing.pdf")], env=bench_env
    )
    assert result.exit_code != 0 and "nothing.pdf" in result.output
