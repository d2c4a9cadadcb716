"""`copilot bench retrieval` end to end on a tiny BEIR folder holding one empty document:
the run skips it, counts it and says so, and prints the fusion sweep and its choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot import services
from copilot.bench import retrieval
from copilot.cli import app
from copilot.knowledge.embeddings import EmbeddingProvider

CORPUS = [
    ("volcano", "Etna", "Mount Etna on Sicily is the most active volcano in Europe."),
    ("empty", "", ""),
    ("bread", "Bread", "Sourdough bread rises with wild yeast and lactic acid bacteria."),
    ("chess", "Chess", "In chess the knight is the only piece that can jump over others."),
]
QUERIES = [
    ("q1", "Which volcano is the most active in Europe?", "volcano"),
    ("q2", "What makes sourdough bread rise?", "bread"),
    ("q3", "Which chess piece jumps over others?", "chess"),
]


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in CORPUS)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": text}) + "\n" for q, text, _ in QUERIES)
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, _, d in QUERIES)
    )
    return folder


def test_an_empty_document_is_skipped_counted_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embeddings: EmbeddingProvider
) -> None:
    monkeypatch.setattr(services, "create_embeddings", lambda _: embeddings)
    folder = _beir(tmp_path / "tiny-beir")
    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}

    result = CliRunner().invoke(
        app, ["bench", "retrieval", "--beir", str(folder), "--json"], env=env
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["doc_id"] for s in report["skipped_documents"]] == ["empty"]
    assert report["skipped_documents"][0]["reason"]
    assert (report["documents"], report["queries"]) == (4, 3)
    keyword = next(r for r in report["retrievers"] if r["name"] == "keyword")
    assert keyword["metrics"]["recall_at_10"] == 1.0  # the other documents were all indexed
    assert len(report["fusion"]) == len(retrieval.sweep_settings())
    assert report["fusion_choice"]["setting"]["method"] in ("rrf", "convex")
    # Each question asked three times with the cache: the first a miss, the others hits,
    # each returning the uncached ranking (figures only: no timing is asserted).
    cache = report["query_cache"]
    assert (cache["questions"], cache["rounds"]) == (3, 3)
    assert cache["hit_rate"] == pytest.approx(2 / 3, abs=0.001)
    assert cache["identical_results"] == 1.0
    assert cache["speedup"] > 0 and cache["hit_p50_ms"] > 0

    text = CliRunner().invoke(
        app, ["bench", "retrieval", "--beir", str(folder), "--sweep"], env=env
    )
    assert text.exit_code == 0, text.output
    assert "skipped 1 document(s)" in text.stdout and "  empty: " in text.stdout
    assert "fusion chosen on half A of 72 settings: " in text.stdout
    assert "convex zscore 0.6 / 0.4" in text.stdout  # a row of the sweep
    assert "query cache, 3 questions asked 3 times: hit rate 0.67" in text.stdout
    assert (
        "mean ratio " in text.stdout
        and "hits identical to the uncached ranking: 100%" in text.stdout
    )
