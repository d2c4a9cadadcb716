"""Search strings with engine query syntax neither error nor widen the scope; another
department's files and files above the asker's clearance never reach search or answers.

Every document here is written by the test itself (nothing from ../shared).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from copilot.answer.chain import AnswerChain
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.base import IndexedChunk, KeywordIndex
from copilot.search.keyword_elasticsearch import ElasticsearchKeywordIndex, access_filter
from copilot.search.keyword_embedded import EmbeddedKeywordIndex
from copilot.search.scope import AccessScope, ChunkAccess
from tests.conftest import People
from tests.search import test_elasticsearch_contract as es_contract

# tantivy/Lucene operators, field syntax (including our own field names and token format),
# quotes, escapes, unbalanced brackets, SQL, NUL, and sizes far beyond a question.
HOSTILE = (
    "AND",
    "OR NOT",
    "zebra AND NOT zebra",
    "+zebra -zebra",
    "zebra OR owner_id:u-bob",
    "owner_id:xyz",
    "owner_id:u-bob",
    "access:*",
    "access:user:u-bob",
    "user:u-bob",
    "dept:d-fin:internal",
    "company:secret",
    "scope:personal OR scope:department",
    "classification:secret",
    "department_id:d-fin",
    "*",
    "zeb*",
    "zebr?",
    "zebra~2",
    "zebra^100",
    "field:value",
    "text:zebra",
    '"zebra',
    '"zebra crossing"',
    "'zebra'",
    "\\",
    "zebra\\",
    "\\*\\:\\(",
    "(",
    ")",
    "((zebra",
    "zebra))",
    "[a TO z]",
    "{* TO *}",
    "/.*/",
    "zebra && || !",
    "'; DROP TABLE chunks; --",
    "') OR 1=1 OR ('",
    "\x00",
    "zebra\x00access:*",
    "zebra " * 5000,
    "a" * 100_000,
    "🦓 " * 1000,
)

ALICE = AccessScope("u-alice", "d-eng", frozenset({"public", "internal"}))
ACCESS = {
    "alice-personal": ChunkAccess("u-alice", "personal", None, "internal"),
    "bob-personal": ChunkAccess("u-bob", "personal", None, "public"),
    "eng-internal": ChunkAccess("u-bob", "department", "d-eng", "internal"),
    "eng-secret": ChunkAccess("u-bob", "department", "d-eng", "secret"),
    "fin-public": ChunkAccess("u-fay", "department", "d-fin", "public"),
    "company-public": ChunkAccess("u-fay", "company", None, "public"),
    "company-confidential": ChunkAccess("u-fay", "company", None, "confidential"),
}


def corpus() -> list[IndexedChunk]:
    """Every chunk holds the words hostile queries contain, so only the filter decides."""
    text = (
        "zebra crossing notes for owner_id access user u-bob dept d-fin internal company "
        "secret scope personal department classification field value text a"
    )
    return [
        IndexedChunk(name, name, f"{name}.md", 0, None, f"{text} ({name})", access)
        for name, access in ACCESS.items()
    ]


ALLOWED = {name for name, access in ACCESS.items() if ALICE.allows(access)}


def test_the_corpus_holds_what_alice_may_not_read() -> None:
    assert {"alice-personal", "eng-internal", "company-public"} == ALLOWED


@pytest.fixture
async def tantivy_index(tmp_path: Path) -> AsyncIterator[EmbeddedKeywordIndex]:
    index = EmbeddedKeywordIndex(tmp_path / "keyword")
    await index.add(corpus())
    try:
        yield index
    finally:
        await index.close()


@pytest.fixture
async def es_index() -> AsyncIterator[tuple[es_contract.FakeElasticsearch, KeywordIndex]]:
    async with es_contract.serving(es_contract.FakeElasticsearch()) as fake:
        index = ElasticsearchKeywordIndex(AsyncElasticsearch(fake.url, max_retries=0), "hostile")
        await index.add(corpus())
        try:
            yield fake, index
        finally:
            await index.close()


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:30]))
async def test_hostile_queries_on_the_embedded_keyword_index(
    tantivy_index: EmbeddedKeywordIndex, query: str
) -> None:
    hits = await tantivy_index.search(query, ALICE, 50)
    assert {hit.chunk_id for hit in hits} <= ALLOWED
    # Whatever the syntax, a word of the text still finds what alice may read.
    with_word = await tantivy_index.search(f"{query} zebra", ALICE, 50)
    assert {hit.chunk_id for hit in with_word} == ALLOWED


def _walk(node: Any) -> Iterator[str]:
    """Every key in a JSON body."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:30]))
async def test_hostile_queries_reach_elasticsearch_as_plain_match_text(
    es_index: tuple[es_contract.FakeElasticsearch, KeywordIndex], query: str
) -> None:
    fake, index = es_index
    hits = await index.search(f"{query} zebra", ALICE, 50)
    assert {hit.chunk_id for hit in hits} == ALLOWED
    *_, search = fake.of("POST", "_search") + fake.of("GET", "_search")
    body = search.json()
    # The text is every `match` query's value (analysed, never parsed), one per field it
    # is read in; the scope is the filter.
    (best_field,) = body["query"]["bool"]["must"]
    clauses = best_field["dis_max"]["queries"]
    assert clauses and all(set(clause) == {"match"} for clause in clauses)
    assert {options["query"] for c in clauses for options in c["match"].values()} == {
        f"{query} zebra"
    }
    assert body["query"]["bool"]["filter"] == [access_filter(ALICE)]
    keys = set(_walk(body))
    assert not keys & {"query_string", "simple_query_string", "regexp", "wildcard", "script"}


# --- through ingestion, search and the answer chain --------------------------------------

SECRET_WORDS = ("9000 euros", "Pelican Holdings")  # only in the FIN and the secret file


@pytest.fixture
async def kiwi_files(kb: KnowledgeBase, people: People, tmp_path: Path) -> dict[str, str]:
    """Alice (ENG, Regular User: up to internal) may read only `eng`."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    eng_id = uuid.UUID(people.alice.department_id or "")
    fin_id = uuid.UUID(people.carol.department_id or "")
    admin = uuid.UUID(people.admin.user_id)
    files = {
        "eng": (
            "kiwi-eng.md",
            "The Kiwi launch checklist: engineering signs off the Kiwi launch on Friday.",
            Ownership(admin, "department", eng_id, "internal"),
        ),
        "fin": (
            "kiwi-fin.md",
            "The Kiwi launch budget is 9000 euros, approved by finance for the Kiwi launch.",
            Ownership(admin, "department", fin_id, "internal"),
        ),
        "secret": (
            "kiwi-secret.md",
            "The Kiwi launch partner is Pelican Holdings; the Kiwi launch stays secret.",
            Ownership(admin, "company", None, "secret"),
        ),
    }
    ids = {}
    for key, (name, text, ownership) in files.items():
        result = await ingest_file(kb, write(name, text), ownership)
        assert result.outcome == "indexed", result.error
        ids[key] = result.file_id
    return ids


QUESTIONS = (
    "What is the Kiwi launch budget and who is the Kiwi launch partner?",
    "Kiwi launch 9000 Pelican",
    "Kiwi OR department_id:* OR classification:secret",
    'access:* "Kiwi launch" budget partner',
)


@pytest.mark.parametrize("question", QUESTIONS)
async def test_other_departments_and_higher_classifications_never_reach_search(
    kb: KnowledgeBase, people: People, kiwi_files: dict[str, str], question: str
) -> None:
    documents, report = await kb.search.search(question, people.alice.scope, k=20)
    assert report.missing == {}
    assert {d.metadata["file_id"] for d in documents} == {kiwi_files["eng"]}
    # The others exist and are found by those who may read them.
    power, _ = await kb.search.search(question, people.power.scope, k=20)
    assert kiwi_files["fin"] in {d.metadata["file_id"] for d in power}
    admin, _ = await kb.search.search(question, people.admin.scope, k=20)
    assert kiwi_files["secret"] in {d.metadata["file_id"] for d in admin}


class RecordingChatModel(GenericFakeChatModel):
    """A chat model that keeps every prompt it is given (tests only)."""

    prompts: list[str] = []

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        yield from super()._stream(messages, *args, **kwargs)

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        yield ChatGenerationChunk(message=AIMessageChunk("The checklist says Friday [1]."))


@pytest.mark.parametrize("question", QUESTIONS)
async def test_other_departments_and_higher_classifications_never_reach_answers(
    kb: KnowledgeBase, people: People, kiwi_files: dict[str, str], question: str
) -> None:
    extractive = ExtractiveAnswerer(kb.embeddings)
    chain = AnswerChain(kb.search, model=None, model_name="extractive", extractive=extractive)
    result = await chain.answer(question, people.alice.scope)
    assert {s["file_id"] for s in result.sources} == {kiwi_files["eng"]}
    for word in SECRET_WORDS:
        assert word not in result.text

    model = RecordingChatModel(messages=iter([]), prompts=[])
    chain = AnswerChain(kb.search, model=model, model_name="recording", extractive=extractive)
    result = await chain.answer(question, people.alice.scope)
    assert {s["file_id"] for s in result.sources} == {kiwi_files["eng"]}
    (prompt,) = model.prompts  # what the model was shown holds nothing alice may not read
    assert "Kiwi launch checklist" in prompt
    for word in SECRET_WORDS:
        assert word not in prompt
