"""`copilot bench answer`: its metrics on hand-made cases, and one run on a tiny dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot import services
from copilot.answer.extractive import NOT_FOUND_TEXT, WEAK_EVIDENCE_TEXT
from copilot.bench.answer import QuestionOutcome, split_holdout, summarize_answers
from copilot.bench.datasets import ANSWER_SPAN, EvalDataset, EvalDocument, EvalQuery, load_squad
from copilot.bench.metrics import (
    RetrievedChunk,
    best_token_f1,
    chunk_holds_answer,
    contains_gold,
    normalize_answer,
    says_not_found,
    token_f1,
)
from copilot.cli import app
from copilot.knowledge.embeddings import EmbeddingProvider

# --- metrics -------------------------------------------------------------------------------


def test_normalize_answer_is_squads() -> None:
    assert normalize_answer("The Quick,  brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"


def test_token_f1() -> None:
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]: P 1, R 2/3.
    assert token_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("Cat.", "the cat") == 1.0
    assert best_token_f1("cat sat", ["dog", "cat"]) == pytest.approx(2 / 3)
    assert best_token_f1("cat", []) == 0.0


def test_contains_gold_on_normalised_token_boundaries() -> None:
    assert contains_gold("It erupted in 2021 [1].", ["2021"])
    assert contains_gold("The island of Sicily.", ["an island of sicily"])
    assert not contains_gold("It erupted in 2021.", ["202"])
    assert not contains_gold("anything", [""])
    assert contains_gold("two metres per day", ["nope", "Two metres"])


def test_says_not_found() -> None:
    assert says_not_found(NOT_FOUND_TEXT)
    assert says_not_found("I could not find this in the knowledge available to you.")
    assert says_not_found("Sorry, I couldn't find that.")
    assert not says_not_found("Mount Etna is on Sicily [1].")
    # Related passages without an answer are not an answer either.
    weak = f"{WEAK_EVIDENCE_TEXT}\n\nEtna erupted in 2021 [1].\n\nSicily is an island [2]."
    assert says_not_found(weak)
    assert not says_not_found(f"Etna erupted in 2021 [1]. {WEAK_EVIDENCE_TEXT}")


def test_chunk_holds_answer_by_span_or_by_text_of_the_same_document() -> None:
    query = EvalQuery("q", "?", {"doc": 1}, (("doc", 120, 126),), ("Sicily",))
    assert chunk_holds_answer(query, RetrievedChunk("doc", 100, 200), "")
    assert not chunk_holds_answer(query, RetrievedChunk("doc", 0, 100), "no answer here")
    assert chunk_holds_answer(query, RetrievedChunk("doc", 0, 100), "it is in Sicily")
    assert chunk_holds_answer(query, None, "it is in Sicily")
    assert not chunk_holds_answer(query, RetrievedChunk("other", 100, 200), "it is in Sicily")


def _dataset(documents: int) -> EvalDataset:
    return EvalDataset(
        "d",
        [EvalDocument(f"d{i}", "", "text") for i in range(documents)],
        [
            EvalQuery(f"q{i}", "?", {f"d{i}": 1}, ((f"d{i}", 0, 1),), ("t",))
            for i in range(documents)
        ],
        ANSWER_SPAN,
    )


def test_split_holdout_moves_the_held_out_documents_questions() -> None:
    corpus, unanswerable = split_holdout(_dataset(10), 0.2, seed=3)
    held = {q.query_id for q in unanswerable}
    assert len(corpus.documents) == 8 and len(held) == 2
    assert {q.query_id for q in corpus.queries} == {f"q{i}" for i in range(10)} - held
    assert split_holdout(_dataset(10), 0.2, seed=3)[1] == unanswerable  # fixed seed
    assert split_holdout(_dataset(10), 0.0, seed=3)[1] == []
    assert len(split_holdout(_dataset(2), 0.9, seed=3)[0].documents) == 1  # one stays in
    with pytest.raises(ValueError, match="holdout fraction"):
        split_holdout(_dataset(2), 1.0, seed=3)


def _outcome(answerable: bool, not_found: bool, gold: bool, f1: float, chars: int, ms: float):  # type: ignore[no-untyped-def]
    return QuestionOutcome("q", answerable, not_found, gold, f1, gold, chars, ms, "", ms / 10)


def test_summarize_answers() -> None:
    report = summarize_answers(
        [
            _outcome(True, False, True, 0.5, 100, 10.0),
            _outcome(True, False, False, 0.1, 300, 20.0),
            _outcome(True, True, False, 0.0, 50, 30.0),
            _outcome(True, False, True, 1.0, 200, 40.0),
            _outcome(False, True, False, 0.0, 50, 50.0),
            _outcome(False, False, False, 0.0, 80, 60.0),
        ],
        dataset="d",
        model="m",
        documents=1,
        held_out_documents=1,
        chunks=1,
        ingest_seconds=0.0,
    )
    assert (report.answerable, report.unanswerable) == (4, 2)
    assert report.gold_contained == 0.5
    assert report.gold_chunk_cited == 0.5
    assert report.mean_f1 == pytest.approx(0.4)
    assert report.wrongly_not_found == 0.25
    assert report.not_found_on_unanswerable == 0.5
    assert report.mean_answer_characters == 200.0  # 100, 300, 200: not-found excluded
    assert report.median_answer_characters == 200.0
    assert report.latency_p50_ms == 35.0
    assert report.latency_p95_ms == 57.5
    assert (report.first_token_p50_ms, report.first_token_p95_ms) == (3.5, 5.8)  # 0.1 ms


# --- one run through the CLI ---------------------------------------------------------------

PARAGRAPHS = [
    (
        "volcano",
        "Volcanoes",
        "Mount Etna is an active volcano on the island of Sicily. It last erupted in 2021 and"
        " is one of the most active volcanoes in the world.",
        "On which island is Mount Etna?",
        "Sicily",
    ),
    (
        "bread",
        "Bread",
        "Sourdough bread is leavened with a starter of wild yeast and lactic acid bacteria."
        " The dough rises slowly over twelve hours.",
        "How long does sourdough dough rise?",
        "twelve hours",
    ),
    (
        "chess",
        "Chess",
        "In chess the knight moves in an L shape: two squares in one direction and then one"
        " square sideways. The knight can jump over other pieces.",
        "Which chess piece can jump over other pieces?",
        "knight",
    ),
    (
        "glacier",
        "Glaciers",
        "The Perito Moreno glacier in Argentina advances about two metres per day across"
        " Lake Argentino.",
        "How fast does the Perito Moreno glacier advance?",
        "about two metres per day",
    ),
]


def _tiny_squad(path: Path) -> Path:
    articles = [
        {
            "title": title,
            "paragraphs": [
                {
                    "document_id": doc_id,
                    "context": context,
                    "qas": [
                        {
                            "id": f"q-{doc_id}",
                            "question": question,
                            "answers": [{"text": answer, "answer_start": context.index(answer)}],
                        }
                    ],
                }
            ],
        }
        for doc_id, title, context, question, answer in PARAGRAPHS
    ]
    path.write_text(json.dumps({"data": articles}), encoding="utf-8")
    return path


def test_bench_answer_on_a_tiny_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embeddings: EmbeddingProvider
) -> None:
    monkeypatch.setattr(services, "create_embeddings", lambda _: embeddings)
    squad = _tiny_squad(tmp_path / "tiny.json")
    # Seed 7 holds out the chess paragraph (of 4, at 25%): its question is unanswerable.
    assert [q.query_id for q in split_holdout(load_squad(squad), 0.25, 7)[1]] == ["q-chess"]
    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}
    args = ["bench", "answer", "--squad", str(squad), "--holdout-fraction", "0.25", "--seed", "7"]

    result = CliRunner().invoke(app, [*args, "--json"], env=env)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "extractive"
    assert (report["documents"], report["held_out_documents"]) == (3, 1)
    assert (report["answerable"], report["unanswerable"]) == (3, 1)
    assert report["gold_contained"] == 1.0
    assert report["gold_chunk_cited"] == 1.0
    assert report["wrongly_not_found"] == 0.0
    assert report["not_found_on_unanswerable"] == 1.0
    answers = {q["query_id"]: q for q in report["questions"]}
    assert answers["q-chess"]["answer"] == NOT_FOUND_TEXT
    assert "Sicily" in answers["q-volcano"]["answer"]
    for outcome in answers.values():  # the answer streams: its first piece comes first
        assert 0 < outcome["first_token_ms"] <= outcome["latency_ms"]
    gold = {f"q-{doc_id}": answer for doc_id, _, _, _, answer in PARAGRAPHS}
    for query_id, outcome in answers.items():
        text = re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", outcome["answer"])
        assert outcome["f1"] == round(best_token_f1(text, [gold[query_id]]), 4)
    answered = [len(answers[q]["answer"]) for q in ("q-volcano", "q-bread", "q-glacier")]
    assert report["mean_answer_characters"] == round(sum(answered) / 3, 1)

    text = CliRunner().invoke(app, args, env=env)
    assert text.exit_code == 0, text.output
    assert "3 documents ingested" in text.stdout and "1 held out" in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.startswith("extractive"))
    assert row.split()[1:2] == ["1.000"] and row.split()[3:6] == ["1.000", "0.000", "1.000"]
