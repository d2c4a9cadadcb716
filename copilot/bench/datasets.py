"""Retrieval evaluation datasets: SQuAD-style files (COVID-QA) and BEIR folders.

Both formats load into the same `EvalDataset`, so the benchmark runner ingests documents and
runs queries the same way whatever the source. They differ in how a result is judged:

* SQuAD-style data says where in a document each answer starts, so a retrieved *chunk* is
  relevant when it contains an answer start (`judged_by="answer_span"`). That judges the
  chunking as well as the ranking, which is what a RAG answer depends on.
* BEIR data only says which *documents* are relevant, with graded scores
  (`judged_by="qrels"`).

Malformed files raise `DatasetError` (a `ValueError`) naming the file and what is wrong, so
the CLI can print it as is instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWER_SPAN = "answer_span"
QRELS = "qrels"


class DatasetError(ValueError):
    """A dataset file or folder is missing a part or is malformed; the message says where."""


@dataclass(frozen=True)
class EvalDocument:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class EvalQuery:
    query_id: str
    text: str
    # Graded relevance per document id (BEIR qrels), e.g. {"doc1": 2}. Only scores > 0.
    relevant_docs: dict[str, int]
    # SQuAD-style data: character spans (doc_id, start, end) of the answers. A chunk is
    # relevant when it contains the start of an answer span of its document. Empty for BEIR.
    answer_spans: tuple[tuple[str, int, int], ...] = ()
    # SQuAD-style data: the gold answer texts as published (for answer benchmarks).
    answer_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalDataset:
    name: str
    documents: list[EvalDocument]
    queries: list[EvalQuery]
    judged_by: str  # ANSWER_SPAN (chunk-level) or QRELS (document-level)


def default_covidqa_path() -> Path:
    """The shared COVID-QA file next to the repository (../shared/data/covidqa/covidqa.json)."""
    repo_root = Path(__file__).resolve().parents[2]
    path = repo_root.parent / "shared" / "data" / "covidqa" / "covidqa.json"
    if not path.is_file():
        raise FileNotFoundError(f"COVID-QA dataset not found at {path}")
    return path


# --- SQuAD ---------------------------------------------------------------------------------


def load_squad(path: Path, name: str | None = None) -> EvalDataset:
    """Load a SQuAD-format file: each paragraph context is a document, each answerable
    question a query judged by where its answers start.

    Document ids, in order of preference: the paragraph's "document_id" (COVID-QA has one),
    the article's "id" (suffixed with the paragraph index when the article has several
    paragraphs), else "{article_index}-{paragraph_index}". Questions marked `is_impossible` or
    without answers are skipped: nothing can be retrieved for them. Answer offsets are kept as
    given even when `context[start:start+len(text)]` differs from the text (COVID-QA has a few
    off by one to three characters): chunk judging only needs the start, and keeping the
    published offsets keeps results comparable with other work on the same data.
    """
    raw = _read_json(path)
    if not isinstance(raw, dict) or "data" not in raw:
        raise DatasetError(f'{path}: not a SQuAD file: the top level has no "data" key')
    articles = raw["data"]
    if not isinstance(articles, list):
        raise DatasetError(f'{path}: "data" must be a list of articles')

    documents: list[EvalDocument] = []
    queries: list[EvalQuery] = []
    seen_doc_ids: set[str] = set()
    seen_query_ids: set[str] = set()
    for article_index, article in enumerate(articles):
        where = f"{path}: data[{article_index}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DatasetError(f'{where} has no "paragraphs" list')
        title = article.get("title")
        title = title if isinstance(title, str) else ""
        paragraphs: list[Any] = article["paragraphs"]
        for paragraph_index, paragraph in enumerate(paragraphs):
            here = f"{where}.paragraphs[{paragraph_index}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise DatasetError(f'{here} has no "context" string')
            context: str = paragraph["context"]
            doc_id = _squad_doc_id(article, paragraph, article_index, paragraph_index)
            if doc_id in seen_doc_ids:
                raise DatasetError(f"{here}: document id {doc_id!r} is used twice")
            seen_doc_ids.add(doc_id)
            documents.append(EvalDocument(doc_id=doc_id, title=title, text=context))

            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise DatasetError(f'{here}: "qas" must be a list')
            for question_index, qa in enumerate(qas):
                query = _squad_query(qa, doc_id, context, f"{here}.qas[{question_index}]")
                if query is None:
                    continue
                if query.query_id in seen_query_ids:
                    raise DatasetError(f"{here}: question id {query.query_id!r} is used twice")
                seen_query_ids.add(query.query_id)
                queries.append(query)

    if not queries:
        raise DatasetError(f"{path}: no answerable questions")
    return EvalDataset(
        name=name or path.stem, documents=documents, queries=queries, judged_by=ANSWER_SPAN
    )


def _squad_doc_id(
    article: dict[str, Any], paragraph: dict[str, Any], article_index: int, paragraph_index: int
) -> str:
    if _is_id(paragraph.get("document_id")):
        return str(paragraph["document_id"])
    if _is_id(article.get("id")):
        if len(article["paragraphs"]) == 1:
            return str(article["id"])
        return f"{article['id']}-{paragraph_index}"
    return f"{article_index}-{paragraph_index}"


def _squad_query(qa: Any, doc_id: str, context: str, where: str) -> EvalQuery | None:
    """One question as a query, or None when it cannot be answered from the context."""
    if not isinstance(qa, dict):
        raise DatasetError(f"{where} is not an object")
    if not _is_id(qa.get("id")) or not isinstance(qa.get("question"), str):
        raise DatasetError(f'{where} needs an "id" and a "question" string')
    answers = qa.get("answers") or []
    if qa.get("is_impossible") or not answers:
        return None
    if not isinstance(answers, list):
        raise DatasetError(f'{where}: "answers" must be a list')
    spans: list[tuple[str, int, int]] = []
    texts: list[str] = []
    for answer_index, answer in enumerate(answers):
        here = f"{where}.answers[{answer_index}]"
        start = answer.get("answer_start") if isinstance(answer, dict) else None
        if not isinstance(start, int) or isinstance(start, bool):
            raise DatasetError(f'{here} has no integer "answer_start"')
        if not isinstance(answer.get("text"), str):
            raise DatasetError(f'{here} has no "text" string')
        if not 0 <= start < len(context):
            raise DatasetError(
                f"{here}: answer_start {start} is outside its context ({len(context)} characters)"
            )
        span = (doc_id, start, start + len(answer["text"]))
        if span not in spans:  # SQuAD dev lists the same answer once per annotator
            spans.append(span)
        if answer["text"] not in texts:
            texts.append(answer["text"])
    return EvalQuery(
        query_id=str(qa["id"]),
        text=qa["question"],
        relevant_docs={doc_id: 1},
        answer_spans=tuple(spans),
        answer_texts=tuple(texts),
    )


# --- BEIR ----------------------------------------------------------------------------------


def load_beir(folder: Path, split: str = "test") -> EvalDataset:
    """Load a BEIR folder: corpus.jsonl (_id, title, text), queries.jsonl (_id, text) and
    qrels/{split}.tsv (query-id, corpus-id, score, after a header line).

    Only qrels with a score above 0 count as relevant (0 means judged not relevant), and only
    queries with at least one relevant document are kept: the others cannot score anything
    and would only drag the means down. Qrels for queries absent from queries.jsonl are
    ignored; qrels naming documents absent from the corpus are kept, so recall reflects them.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder}: BEIR folder not found")
    corpus_path = folder / "corpus.jsonl"
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path):
        if not required.is_file():
            raise DatasetError(f"{folder}: BEIR folder has no {required.name}")
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DatasetError(
            f"{folder}: BEIR folder has no qrels/{split}.tsv"
            f" (splits found: {', '.join(available) or 'none'})"
        )

    documents: list[EvalDocument] = []
    seen_doc_ids: set[str] = set()
    for line_number, record in _jsonl_records(corpus_path):
        doc_id = _record_id(record, corpus_path, line_number)
        text = record.get("text")
        title = record.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise DatasetError(f'{corpus_path}:{line_number}: "text" and "title" must be strings')
        if doc_id in seen_doc_ids:
            raise DatasetError(f"{corpus_path}:{line_number}: document id {doc_id!r} is used twice")
        seen_doc_ids.add(doc_id)
        documents.append(EvalDocument(doc_id=doc_id, title=title, text=text))

    qrels = _read_qrels(qrels_path)

    queries: list[EvalQuery] = []
    seen_query_ids: set[str] = set()
    for line_number, record in _jsonl_records(queries_path):
        query_id = _record_id(record, queries_path, line_number)
        text = record.get("text")
        if not isinstance(text, str):
            raise DatasetError(f'{queries_path}:{line_number}: "text" must be a string')
        if query_id in seen_query_ids:
            raise DatasetError(f"{queries_path}:{line_number}: query id {query_id!r} is used twice")
        seen_query_ids.add(query_id)
        relevant = {doc_id: score for doc_id, score in qrels.get(query_id, {}).items() if score > 0}
        if relevant:
            queries.append(EvalQuery(query_id=query_id, text=text, relevant_docs=relevant))

    if not queries:
        raise DatasetError(
            f"{folder}: no query in queries.jsonl has a relevant document in qrels/{split}.tsv"
        )
    return EvalDataset(name=folder.name, documents=documents, queries=queries, judged_by=QRELS)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {document id: score}. The first line is skipped when it is a header."""
    qrels: dict[str, dict[str, int]] = {}
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        columns = [column.strip() for column in columns]
        if len(columns) != 3:
            raise DatasetError(
                f"{path}:{line_number}: expected 3 columns (query-id, corpus-id, score),"
                f" found {len(columns)}"
            )
        query_id, doc_id, score_text = columns
        try:
            score = int(score_text)
        except ValueError:
            if line_number == 1:
                continue  # the "query-id corpus-id score" header
            raise DatasetError(
                f"{path}:{line_number}: score {score_text!r} is not an integer"
            ) from None
        qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


# --- file helpers --------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror})") from None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line, streamed: BEIR corpora can be large.

    Line numbers go into every error so a bad record can be found.
    """
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{line_number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{line_number}: expected a JSON object")
        yield line_number, record


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, with read errors as `DatasetError`."""
    try:
        with path.open(encoding="utf-8") as file:
            for line_number, line in enumerate(file, start=1):
                yield line_number, line.rstrip("\r\n")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror})") from None


def _record_id(record: dict[str, Any], path: Path, line_number: int) -> str:
    if not _is_id(record.get("_id")):
        raise DatasetError(f'{path}:{line_number}: missing "_id"')
    return str(record["_id"])


def _is_id(value: Any) -> bool:
    """Ids may be strings or integers in the wild (COVID-QA uses integers)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and value != "") or isinstance(value, int)
