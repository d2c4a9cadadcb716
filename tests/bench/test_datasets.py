"""Dataset loaders against the real COVID-QA file and small SQuAD/BEIR files written per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copilot.bench import datasets
from copilot.bench.datasets import (
    ANSWER_SPAN,
    QRELS,
    DatasetError,
    EvalDocument,
    EvalQuery,
    default_covidqa_path,
    load_beir,
    load_squad,
)
from copilot.search.language import detect_language

COVIDQA = Path(__file__).resolve().parents[3] / "shared" / "data" / "covidqa" / "covidqa.json"


@pytest.fixture(scope="module")
def covidqa_raw() -> dict[str, Any]:
    if not COVIDQA.is_file():
        pytest.skip(f"COVID-QA is not at {COVIDQA}; the shared data folder is missing")
    raw: dict[str, Any] = json.loads(COVIDQA.read_text(encoding="utf-8"))
    return raw


# --- COVID-QA ------------------------------------------------------------------------------


def test_default_covidqa_path_points_at_the_shared_file(covidqa_raw: dict[str, Any]) -> None:
    assert default_covidqa_path() == COVIDQA


def test_default_covidqa_path_names_the_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.Path, "is_file", lambda self: False)
    with pytest.raises(FileNotFoundError, match=r"shared/data/covidqa/covidqa\.json"):
        default_covidqa_path()


def test_covidqa_has_98_documents_and_1380_questions(covidqa_raw: dict[str, Any]) -> None:
    dataset = load_squad(COVIDQA)

    assert dataset.name == "covidqa"
    assert dataset.judged_by == ANSWER_SPAN
    assert len(dataset.documents) == 98
    assert len({document.text for document in dataset.documents}) == 98  # distinct contexts
    assert len(dataset.queries) == 1380
    assert len({query.query_id for query in dataset.queries}) == 1380
    # COVID-QA paragraphs carry their own integer document_id; it becomes the doc id.
    first_paragraph = covidqa_raw["data"][0]["paragraphs"][0]
    assert dataset.documents[0].doc_id == str(first_paragraph["document_id"])
    assert dataset.documents[0].text == first_paragraph["context"]
    assert dataset.documents[0].title == ""  # articles have no title


def test_covidqa_queries_point_into_their_documents(covidqa_raw: dict[str, Any]) -> None:
    dataset = load_squad(COVIDQA)
    texts = {document.doc_id: document.text for document in dataset.documents}

    for query in dataset.queries:
        assert query.text.strip()
        assert len(query.answer_spans) == 1  # one answer per question in COVID-QA
        doc_id, start, end = query.answer_spans[0]
        assert query.relevant_docs == {doc_id: 1}
        assert 0 <= start < len(texts[doc_id])
        assert end > start


def test_covidqa_answer_offsets_are_kept_as_published(covidqa_raw: dict[str, Any]) -> None:
    """234 of 1380 answers do not sit exactly at answer_start: 196 really start one character
    earlier and 38 two or three characters later. The loader keeps the published offsets (a
    chunk boundary would have to fall in those few characters to change a judgement)."""
    dataset = load_squad(COVIDQA)
    spans = {query.query_id: query.answer_spans[0] for query in dataset.queries}

    exact = shifted_earlier = shifted_later = 0
    for article in covidqa_raw["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                start, text = answer["answer_start"], answer["text"]
                assert spans[str(qa["id"])][1:] == (start, start + len(text))
                if context[start : start + len(text)] == text:
                    exact += 1
                elif context[start - 1 : start - 1 + len(text)] == text:
                    shifted_earlier += 1
                elif text.strip() in context[start : start + len(text) + 3]:
                    shifted_later += 1

    assert (exact, shifted_earlier, shifted_later) == (1146, 196, 38)


# --- SQuAD ---------------------------------------------------------------------------------


def _write_json(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def _squad_file(tmp_path: Path) -> Path:
    return _write_json(
        tmp_path / "tiny-squad.json",
        {
            "version": "v2.0",
            "data": [
                {
                    "title": "Cats",
                    "paragraphs": [
                        {
                            "context": "Cats sleep a lot. They purr.",
                            "qas": [
                                {
                                    "id": "q1",
                                    "question": "What do cats do a lot?",
                                    "answers": [
                                        {"text": "sleep", "answer_start": 5},
                                        {"text": "sleep", "answer_start": 5},
                                        {"text": "sleep a lot", "answer_start": 5},
                                    ],
                                },
                                {
                                    "id": "q2",
                                    "question": "Do cats fly?",
                                    "answers": [],
                                    "is_impossible": True,
                                },
                                {"id": "q3", "question": "Unanswered?", "answers": []},
                            ],
                        },
                        {
                            "context": "Kittens play.",
                            "qas": [
                                {
                                    "id": 7,
                                    "question": "Who plays?",
                                    "answers": [{"text": "Kittens", "answer_start": 0}],
                                }
                            ],
                        },
                    ],
                },
                {
                    "id": "dogs",
                    "paragraphs": [{"context": "Dogs bark.", "qas": []}],
                },
            ],
        },
    )


def test_load_squad_maps_paragraphs_to_documents_and_questions_to_queries(
    tmp_path: Path,
) -> None:
    dataset = load_squad(_squad_file(tmp_path), name="tiny")

    assert dataset.name == "tiny"
    assert dataset.judged_by == ANSWER_SPAN
    assert dataset.documents == [
        EvalDocument(doc_id="0-0", title="Cats", text="Cats sleep a lot. They purr."),
        EvalDocument(doc_id="0-1", title="Cats", text="Kittens play."),
        EvalDocument(doc_id="dogs", title="", text="Dogs bark."),
    ]
    # q2 (impossible) and q3 (no answers) are skipped; repeated answers are listed once.
    assert dataset.queries == [
        EvalQuery(
            query_id="q1",
            text="What do cats do a lot?",
            relevant_docs={"0-0": 1},
            answer_spans=(("0-0", 5, 10), ("0-0", 5, 16)),
            answer_texts=("sleep", "sleep a lot"),
        ),
        EvalQuery(
            query_id="7",
            text="Who plays?",
            relevant_docs={"0-1": 1},
            answer_spans=(("0-1", 0, 7),),
            answer_texts=("Kittens",),
        ),
    ]


def test_load_squad_names_the_dataset_after_the_file(tmp_path: Path) -> None:
    assert load_squad(_squad_file(tmp_path)).name == "tiny-squad"


def test_load_squad_suffixes_article_ids_with_several_paragraphs(tmp_path: Path) -> None:
    path = _write_json(
        tmp_path / "ids.json",
        {
            "data": [
                {
                    "id": "art",
                    "paragraphs": [
                        {"context": "One.", "qas": []},
                        {
                            "context": "Two.",
                            "qas": [
                                {
                                    "id": "q",
                                    "question": "?",
                                    "answers": [{"text": "Two", "answer_start": 0}],
                                }
                            ],
                        },
                    ],
                }
            ]
        },
    )
    dataset = load_squad(path)
    assert [document.doc_id for document in dataset.documents] == ["art-0", "art-1"]
    assert dataset.queries[0].relevant_docs == {"art-1": 1}


def _one_question(answer: dict[str, Any], context: str = "Some context.") -> dict[str, Any]:
    qa = {"id": "q", "question": "?", "answers": [answer]}
    return {"data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"version": "1"}, 'no "data" key'),
        ([1, 2], 'no "data" key'),
        ({"data": {"a": 1}}, '"data" must be a list'),
        ({"data": [{"title": "x"}]}, r'data\[0\] has no "paragraphs" list'),
        ({"data": [{"paragraphs": [{"qas": []}]}]}, r'paragraphs\[0\] has no "context"'),
        (_one_question({"text": "Some"}), r'answers\[0\] has no integer "answer_start"'),
        (_one_question({"answer_start": 0}), r'answers\[0\] has no "text"'),
        (_one_question({"text": "x", "answer_start": 99}), "answer_start 99 is outside"),
        (
            {"data": [{"paragraphs": [{"context": "No questions.", "qas": []}]}]},
            "no answerable questions",
        ),
    ],
)
def test_load_squad_rejects_malformed_files(tmp_path: Path, content: Any, problem: str) -> None:
    path = _write_json(tmp_path / "bad.json", content)
    with pytest.raises(DatasetError, match=problem) as raised:
        load_squad(path)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_load_squad_rejects_duplicate_question_ids(tmp_path: Path) -> None:
    content = _one_question({"text": "Some", "answer_start": 0})
    paragraph = content["data"][0]["paragraphs"][0]
    paragraph["qas"].append(dict(paragraph["qas"][0]))
    with pytest.raises(DatasetError, match="question id 'q' is used twice"):
        load_squad(_write_json(tmp_path / "dup.json", content))


def test_load_squad_rejects_text_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("this is not json", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"notes\.json: not JSON"):
        load_squad(path)


def test_load_squad_rejects_files_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"data": ["caf\xe9"]}')
    with pytest.raises(DatasetError, match=r"latin1\.json: not UTF-8"):
        load_squad(path)


def test_load_squad_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing\.json: file not found"):
        load_squad(tmp_path / "missing.json")


# --- BEIR ----------------------------------------------------------------------------------


def _write_beir(
    folder: Path,
    corpus: list[dict[str, Any]] | None = None,
    queries: list[dict[str, Any]] | None = None,
    qrels: str | None = None,
    split: str = "test",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    corpus = corpus or [
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin thins blood.", "metadata": {}},
        {"_id": "d2", "text": "Ibuprofen reduces fever."},
        {"_id": 3, "title": "Rest", "text": "Sleep helps recovery."},
    ]
    queries = queries or [
        {"_id": "q1", "text": "what thins blood", "metadata": {}},
        {"_id": "q2", "text": "fever remedies"},
        {"_id": "q3", "text": "judged but nothing relevant"},
        {"_id": "q4", "text": "not judged at all"},
    ]
    if qrels is None:
        qrels = (
            "query-id\tcorpus-id\tscore\n"
            "q1\td1\t2\n"
            "q1\t3\t1\n"
            "q1\td2\t0\n"
            "\n"
            "q2\td2\t1\n"
            "q3\td1\t0\n"
            "q-unknown\td1\t1\n"
        )
    lines = [json.dumps(record) for record in corpus]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    lines = [json.dumps(record) for record in queries]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return folder


def test_load_beir_keeps_queries_with_a_relevant_document(tmp_path: Path) -> None:
    dataset = load_beir(_write_beir(tmp_path / "tinybeir"))

    assert dataset.name == "tinybeir"
    assert dataset.judged_by == QRELS
    assert dataset.documents == [
        EvalDocument(doc_id="d1", title="Aspirin", text="Aspirin thins blood."),
        EvalDocument(doc_id="d2", title="", text="Ibuprofen reduces fever."),
        EvalDocument(doc_id="3", title="Rest", text="Sleep helps recovery."),
    ]
    # q3 has only a 0 judgement and q4 none: both dropped. Score 0 is not relevant.
    assert dataset.queries == [
        EvalQuery(query_id="q1", text="what thins blood", relevant_docs={"d1": 2, "3": 1}),
        EvalQuery(query_id="q2", text="fever remedies", relevant_docs={"d2": 1}),
    ]
    assert all(query.answer_spans == () for query in dataset.queries)


def test_load_beir_reads_the_requested_split_without_a_header(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "b", qrels="q2\td2\t1\n", split="dev")
    _write_beir(folder, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    dataset = load_beir(folder, split="dev")
    assert [query.query_id for query in dataset.queries] == ["q2"]


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl"])
def test_load_beir_names_a_missing_file(tmp_path: Path, missing: str) -> None:
    folder = _write_beir(tmp_path / "b")
    (folder / missing).unlink()
    with pytest.raises(DatasetError, match=f"BEIR folder has no {missing}"):
        load_beir(folder)


def test_load_beir_lists_the_splits_it_has(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "b", split="dev")
    with pytest.raises(DatasetError, match=r"no qrels/test\.tsv \(splits found: dev\)"):
        load_beir(folder)


def test_load_beir_names_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="BEIR folder not found"):
        load_beir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("qrels", "problem"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\n", r"test\.tsv:2: expected 3 columns .* found 2"),
        ("q1\t0\td1\t1\n", r"test\.tsv:1: expected 3 columns .* found 4"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"test\.tsv:2: score 'high' is not an"),
        ("query-id\tcorpus-id\tscore\nq4\td1\t0\n", "no query in queries.jsonl has a relevant"),
    ],
)
def test_load_beir_rejects_bad_qrels(tmp_path: Path, qrels: str, problem: str) -> None:
    folder = _write_beir(tmp_path / "b", qrels=qrels)
    with pytest.raises(DatasetError, match=problem):
        load_beir(folder)


def test_load_beir_points_at_a_bad_jsonl_line(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "b")
    with (folder / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write('{"_id": "d9", "text": \n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:5: not JSON"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("corpus", "problem"),
    [
        ([{"title": "t", "text": "x"}], r'corpus\.jsonl:1: missing "_id"'),
        ([{"_id": "d1", "title": "t"}], r'corpus\.jsonl:1: "text" and "title" must be strings'),
        ([{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}], "'d1' is used twice"),
    ],
)
def test_load_beir_rejects_bad_corpus_records(
    tmp_path: Path, corpus: list[dict[str, Any]], problem: str
) -> None:
    folder = _write_beir(tmp_path / "b", corpus=corpus)
    with pytest.raises(DatasetError, match=problem):
        load_beir(folder)


def test_load_beir_rejects_queries_without_text(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "b", queries=[{"_id": "q1"}])
    with pytest.raises(DatasetError, match=r'queries\.jsonl:1: "text" must be a string'):
        load_beir(folder)


MULTILINGUAL = Path(__file__).parent / "data" / "fixtures_multilingual_squad.json"


def test_the_hand_made_multilingual_set_answers_from_the_fixtures_own_text() -> None:
    """27 questions written by hand over what the loaders extract from the French, German
    and Spanish fixtures; each answer is a span of its passage, and each question is in
    its passage's language (the Spanish passage is mostly English: its Spanish sentences
    are asked about)."""
    dataset = load_squad(MULTILINGUAL)
    assert (len(dataset.documents), len(dataset.queries)) == (13, 27)
    texts = {document.doc_id: document.text for document in dataset.documents}
    languages: dict[str, int] = {}
    for query in dataset.queries:
        ((doc_id, start, end),) = query.answer_spans
        assert texts[doc_id][start:end] == query.answer_texts[0]
        language = str(detect_language(query.text))
        languages[language] = languages.get(language, 0) + 1
    assert languages == {"fr": 22, "de": 2, "es": 3}
