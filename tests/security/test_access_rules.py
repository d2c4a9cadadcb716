"""Access rules as data: one token rule, the same answer from every engine and from Python.

The property test builds random users and files, indexes the files in all four engines
(embedded tantivy and LanceDB, and the Elasticsearch and Weaviate adapters talking to the
wire fakes from tests/search/, which evaluate the filters they receive), and checks that
each returns exactly the chunks the plain-English rule written below allows, before and
after a file's access changes in place.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.knowledge.test_ingest as ingest_tests
from copilot.answer.chain import AnswerChain, SearchUnavailable
from copilot.answer.extractive import ExtractiveAnswerer
from copilot.db.models import File
from copilot.knowledge.access import (
    AccessChangeRefused,
    AccessUpdateFailed,
    file_access,
    set_file_access,
)
from copilot.knowledge.ingest import IngestResult, Ownership, ingest_file, reindex
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.search.base import IndexedChunk, KeywordIndex, VectorIndex
from copilot.search.keyword_elasticsearch import ElasticsearchKeywordIndex
from copilot.search.keyword_embedded import EmbeddedKeywordIndex
from copilot.search.scope import (
    AccessScope,
    ChunkAccess,
    company_token,
    department_token,
    user_token,
)
from copilot.search.vector_embedded import EmbeddedVectorIndex
from copilot.search.vector_weaviate import WeaviateVectorIndex
from tests.conftest import People
from tests.search import test_elasticsearch_contract as es_contract
from tests.search import test_weaviate_contract as weaviate_contract

CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
# Ids with ':' and '%' try to make one file's token look like another's.
USER_IDS = ("u-ann", "u-bo", "u:dept:d-eng:secret", "u%3Aann")
DEPARTMENT_IDS = ("d-eng", "d-fin", "d-eng:secret", "d%3Aeng")
DIMENSION = 4
CHUNKS_PER_FILE = 2
WORD = "policy"  # in every chunk, so a keyword search for it can reach them all
EVERYTHING = 1000  # k larger than any corpus here


# --- the rule in plain English, written without looking at the token code ---------------


@dataclass(frozen=True)
class User:
    id: str
    department: str | None
    clearance: int  # index of the highest classification they may read; -1: none

    @property
    def scope(self) -> AccessScope:
        """What `users.Principal.scope` builds from a user's roles."""
        readable = frozenset(CLASSIFICATIONS[: self.clearance + 1])
        return AccessScope(self.id, self.department, readable)


@dataclass(frozen=True)
class FileSpec:
    id: str
    owner: str
    scope: str
    department: str | None
    classification: str

    @property
    def access(self) -> ChunkAccess:
        return ChunkAccess(self.owner, self.scope, self.department, self.classification)


def may_read(user: User, file: FileSpec) -> bool:
    """Owner's personal files; company files and own department's department files, within
    the classifications the user's roles allow."""
    if file.scope == "personal":
        return file.owner == user.id
    cleared = CLASSIFICATIONS.index(file.classification) <= user.clearance
    if file.scope == "company":
        return cleared
    if file.scope == "department":
        return cleared and user.department is not None and user.department == file.department
    return False


# --- random worlds ------------------------------------------------------------------------

users = st.builds(
    User,
    id=st.sampled_from(USER_IDS),
    department=st.sampled_from((*DEPARTMENT_IDS, None)),
    clearance=st.integers(-1, len(CLASSIFICATIONS) - 1),
)


def file_specs(file_id: str) -> st.SearchStrategy[FileSpec]:
    return st.builds(
        FileSpec,
        id=st.just(file_id),
        owner=st.sampled_from(USER_IDS),
        scope=st.sampled_from(("personal", "department", "company")),
        department=st.sampled_from((*DEPARTMENT_IDS, None)),
        classification=st.sampled_from(CLASSIFICATIONS),
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[User], list[FileSpec], FileSpec]:
    """Users, files, and a new access for one of the files."""
    count = draw(st.integers(1, 6))
    files = [draw(file_specs(f"file-{i}")) for i in range(count)]
    people = draw(st.lists(users, min_size=1, max_size=4, unique_by=lambda u: u.id))
    changed = draw(file_specs(draw(st.sampled_from([f.id for f in files]))))
    return people, files, changed


def vector_of(position: int) -> list[float]:
    """Distinct unit vectors, none orthogonal to the query (cosine stays defined)."""
    raw = [1.0, 0.1 * (position % 7), 0.05 * (position % 3), 0.02 * position]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


def chunks_of(files: list[FileSpec]) -> list[IndexedChunk]:
    return [
        IndexedChunk(
            chunk_id=f"{file.id}-{ordinal}",
            file_id=file.id,
            file_name=f"{file.id}.md",
            ordinal=ordinal,
            page=None,
            text=f"{WORD} memo number {n} of {file.id}",
            access=file.access,
            vector=vector_of(n),
        )
        for n, (file, ordinal) in enumerate(
            (file, ordinal) for file in files for ordinal in range(CHUNKS_PER_FILE)
        )
    ]


# --- the four engines, opened once per test ----------------------------------------------


@dataclass
class Engines:
    keyword: list[KeywordIndex]
    vector: list[VectorIndex]


@asynccontextmanager
async def four_engines(folder: Path) -> AsyncIterator[Engines]:
    async with AsyncExitStack() as stack:
        es = await stack.enter_async_context(es_contract.serving(es_contract.FakeElasticsearch()))
        weaviate = await stack.enter_async_context(
            weaviate_contract.serving(weaviate_contract.FakeWeaviate.evaluating())
        )
        engines = Engines(
            keyword=[
                EmbeddedKeywordIndex(folder / "keyword"),
                ElasticsearchKeywordIndex(
                    AsyncElasticsearch(es.url, max_retries=0), "copilot-property"
                ),
            ],
            vector=[
                EmbeddedVectorIndex(folder / "vector", DIMENSION),
                WeaviateVectorIndex.from_url(
                    f"http://127.0.0.1:{weaviate.http_port}",
                    weaviate.grpc_port,
                    collection="CopilotProperty",
                    dimension=DIMENSION,
                    skip_init_checks=True,
                ),
            ],
        )
        try:
            yield engines
        finally:
            for index in [*engines.keyword, *engines.vector]:
                await index.close()


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, Engines]]:
    """One event loop and one set of engines for all of a test's examples."""
    with asyncio.Runner() as runner:
        context = four_engines(tmp_path / "indexes")
        opened = runner.run(context.__aenter__())
        try:
            yield runner, opened
        finally:
            runner.run(context.__aexit__(None, None, None))


async def found_by_each(engines: Engines, user: User) -> dict[str, set[str]]:
    """Chunk ids each engine returns to the user for a search that matches every chunk."""
    found = {}
    for keyword in engines.keyword:
        hits = await keyword.search(WORD, user.scope, EVERYTHING)
        found[keyword.name] = {hit.chunk_id for hit in hits}
    for vector in engines.vector:
        hits = await vector.search(vector_of(0), user.scope, EVERYTHING)
        found[vector.name] = {hit.chunk_id for hit in hits}
    return found


async def check_world(
    engines: Engines, people: list[User], files: list[FileSpec], changed: FileSpec
) -> None:
    chunks = chunks_of(files)
    for index in [*engines.keyword, *engines.vector]:
        await index.clear()
        await index.add(chunks)

    async def every_engine_agrees(current: list[FileSpec]) -> None:
        by_id = {file.id: file for file in current}
        for user in people:
            allowed = {c.chunk_id for c in chunks if may_read(user, by_id[c.file_id])}
            for file in current:  # the Python rule is the plain-English rule
                assert user.scope.allows(file.access) == may_read(user, file), (user, file)
            for engine, found in (await found_by_each(engines, user)).items():
                assert found == allowed, (engine, user, current)

    await every_engine_agrees(files)
    for index in [*engines.keyword, *engines.vector]:
        await index.update_access(changed.id, changed.access)
    await every_engine_agrees([changed if f.id == changed.id else f for f in files])


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_every_engine_returns_exactly_what_the_rule_allows(
    engines: tuple[asyncio.Runner, Engines], world: tuple[list[User], list[FileSpec], FileSpec]
) -> None:
    runner, opened = engines
    runner.run(check_world(opened, *world))


def test_token_parts_are_encoded_so_separators_in_ids_cannot_forge_a_token() -> None:
    """The token format: a ':' or '%' inside an id is percent-encoded, so only the
    separators the rule writes split a token (UUIDs and classification names read as is)."""
    assert user_token("a:b") == "user:a%3Ab"
    assert department_token("d-eng:secret", "public") == "dept:d-eng%3Asecret:public"
    assert department_token("d%3Aeng", "secret") == "dept:d%253Aeng:secret"
    assert company_token("secret") == "company:secret"
    uuid_id = "6f0d6c52-4a55-4f8e-9a43-3a1c1d2f0b7e"
    assert user_token(uuid_id) == f"user:{uuid_id}"
    eng_secret = ChunkAccess("u-x", "department", "d-eng", "secret")
    assert not AccessScope("u-y", "d-eng:secret", frozenset({"public"})).allows(eng_secret)
    # A department file without a department is nobody's (not even its owner's).
    assert ChunkAccess("u-x", "department", None, "public").tokens == frozenset()
    assert ChunkAccess("u-x", "shared-with-all", None, "public").tokens == frozenset()


# --- issue 9: security tests that make their own files never skip ----------------------


def test_only_tests_that_read_shared_fixtures_may_skip_without_them() -> None:
    """Tests that write their own files must run when ../shared is missing."""
    module_marks = getattr(ingest_tests, "pytestmark", [])
    module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
    assert not [m for m in module_marks if m.name == "skipif"], "a module-wide skip"
    for name, function in vars(ingest_tests).items():
        if not name.startswith("test_") or not callable(function):
            continue
        skips = [m for m in getattr(function, "pytestmark", []) if m.name == "skipif"]
        if "FIXTURES" not in inspect.getsource(function):
            assert not skips, f"{name} writes its own files but skips without ../shared"


# --- changing a file's access: PostgreSQL first, then both indexes, nothing re-embedded ---


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


async def _company_file(kb: KnowledgeBase, people: People, path: Path) -> IngestResult:
    """An internal company file owned by the admin: everyone seeded may read it."""
    result = await ingest_file(
        kb, path, Ownership(uuid.UUID(people.admin.user_id), "company", None, "internal")
    )
    assert result.outcome == "indexed", result.error
    return result


async def _readers(kb: KnowledgeBase, file_id: str, query: str, people: People) -> set[str]:
    """Who among the seeded people finds the file, through the hybrid search."""
    found = set()
    for name in ("alice", "bob", "carol", "power", "admin"):
        principal = getattr(people, name)
        documents, report = await kb.search.search(query, principal.scope, k=20)
        assert report.missing == {}
        if file_id in {d.metadata["file_id"] for d in documents}:
            found.add(name)
    return found


async def _index_readers(kb: KnowledgeBase, file_id: str, query: str, people: People) -> dict:
    """Who finds the file in each index separately (the ensemble would hide one's drift)."""
    vector = await asyncio.to_thread(kb.embeddings.embed_query, query)
    found: dict[str, set[str]] = {"keyword": set(), "vector": set()}
    for name in ("alice", "bob", "carol", "power", "admin"):
        scope = getattr(people, name).scope
        if file_id in {h.file_id for h in await kb.indexes.keyword.search(query, scope, 50)}:
            found["keyword"].add(name)
        if file_id in {h.file_id for h in await kb.indexes.vector.search(vector, scope, 50)}:
            found["vector"].add(name)
    return found


class _CountingEmbeddings:
    """Counts document embeddings: changing access must not compute any."""

    def __init__(self, inner: object) -> None:
        self.inner, self.documents = inner, 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += len(texts)
        return self.inner.embed_documents(texts)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_set_file_access_moves_readers_in_both_indexes_without_embedding(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    text = "The Quokka programme budget review happens every fortnight in Zurich."
    result = await _company_file(kb, people, _write(tmp_path, "quokka.md", text))
    assert result.outcome == "indexed", result.error
    everyone = {"alice", "bob", "carol", "power", "admin"}
    assert await _readers(kb, result.file_id, "Quokka programme budget", people) == everyone

    counting = _CountingEmbeddings(kb.embeddings)
    kb.embeddings = counting  # type: ignore[assignment]
    kb.search.embeddings = counting  # type: ignore[assignment]
    eng = uuid.UUID(people.alice.department_id or "")
    change = await set_file_access(
        kb, uuid.UUID(result.file_id), scope="department", department_id=eng
    )
    assert change.chunks == result.chunks
    both = await _index_readers(kb, result.file_id, "Quokka programme budget", people)
    assert both == {"keyword": {"alice", "bob"}, "vector": {"alice", "bob"}}

    await set_file_access(kb, uuid.UUID(result.file_id), classification="confidential")
    # alice and bob are Regular Users (up to internal): the file is now above them.
    assert await _readers(kb, result.file_id, "Quokka programme budget", people) == set()

    fin = uuid.UUID(people.carol.department_id or "")
    await set_file_access(kb, uuid.UUID(result.file_id), department_id=fin)
    both = await _index_readers(kb, result.file_id, "Quokka programme budget", people)
    assert both == {"keyword": {"power"}, "vector": {"power"}}
    assert counting.documents == 0  # nothing was re-embedded

    async with kb.sessions() as session:
        row = await session.get_one(File, uuid.UUID(result.file_id))
    assert (row.scope, row.department_id, row.classification) == ("department", fin, "confidential")
    # The rule that /files/{id} applies to the row agrees with what search does.
    assert people.power.scope.allows(file_access(row))
    assert not people.carol.scope.allows(file_access(row))


async def test_a_failed_index_write_puts_everything_back(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    text = "Wombat logistics: the Tuesday lorry leaves the depot at six."
    result = await _company_file(kb, people, _write(tmp_path, "wombat.md", text))
    before = await _index_readers(kb, result.file_id, "Wombat logistics lorry", people)
    assert before["keyword"] == before["vector"] == {"alice", "bob", "carol", "power", "admin"}

    class Refusing:
        def __init__(self, inner: object) -> None:
            self.inner, self.name = inner, "lancedb"

        async def update_access(self, file_id: str, access: ChunkAccess) -> None:
            if access.scope == "personal":  # the change; putting it back works
                raise RuntimeError("disk full")
            await self.inner.update_access(file_id, access)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    kb.indexes.vector = Refusing(kb.indexes.vector)  # type: ignore[assignment]
    with pytest.raises(AccessUpdateFailed, match="lancedb.*disk full") as info:
        await set_file_access(kb, uuid.UUID(result.file_id), scope="personal")
    assert "nothing was changed" in str(info.value)
    # The keyword index had taken the change: it is undone, and the row is as it was.
    assert await _index_readers(kb, result.file_id, "Wombat logistics lorry", people) == before
    async with kb.sessions() as session:
        row = await session.get_one(File, uuid.UUID(result.file_id))
    assert (row.scope, row.classification) == ("company", "internal")


async def test_set_file_access_refuses_what_makes_no_sense(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    result = await ingest_file(
        kb,
        _write(tmp_path, "n.md", "Numbat census notes."),
        Ownership(uuid.UUID(people.alice.user_id)),
    )
    file_id = uuid.UUID(result.file_id)
    with pytest.raises(AccessChangeRefused, match="no file with id"):
        await set_file_access(kb, uuid.uuid4(), scope="company")
    with pytest.raises(AccessChangeRefused, match="classification 'top' .*public, internal"):
        await set_file_access(kb, file_id, classification="top")
    with pytest.raises(AccessChangeRefused, match="scope 'world' .*personal, department, company"):
        await set_file_access(kb, file_id, scope="world")
    with pytest.raises(AccessChangeRefused, match="no department with id"):
        await set_file_access(kb, file_id, scope="department", department_id=uuid.uuid4())
    # A department file with no department given takes the owner's.
    change = await set_file_access(kb, file_id, scope="department")
    assert change.after.department_id == uuid.UUID(people.alice.department_id or "")


def test_files_access_command_changes_who_finds_the_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from copilot.cli import app

    runner = CliRunner()
    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    def found_by(email: str) -> set[str]:
        hits = json.loads(ok("search", "Platypus migration", "--as", email, "--json"))["hits"]
        return {hit["file_id"] for hit in hits}

    ok("setup", "--no-demo-admin")
    for email, department in (("ann@example.com", "ENG"), ("fay@example.com", "FIN")):
        ok("users", "add", email, "--department", department, "--password", "long enough")
    document = _write(tmp_path, "platypus.md", "The Platypus migration plan starts in May.")
    ok("ingest", str(document), "--owner", "ann@example.com", "--scope", "company")
    (row,) = json.loads(ok("files", "list", "--json"))
    assert found_by("ann@example.com") == found_by("fay@example.com") == {row["id"]}

    said = ok("files", "access", row["id"], "--scope", "department", "--department", "eng")
    assert "now department (eng), internal" in said and f"{row['chunks']} chunks" in said
    assert found_by("ann@example.com") == {row["id"]}
    assert found_by("fay@example.com") == set()
    (row,) = json.loads(ok("files", "list", "--json"))
    assert row["scope"] == "department"

    for args, message in (
        (["files", "access", row["id"]], "say what to change"),
        (["files", "access", row["id"], "--department", "XX"], "no department with code 'XX'"),
        (["files", "access", str(uuid.uuid4()), "--scope", "company"], "no file with id"),
        (["files", "access", row["id"], "--classification", "top"], "Invalid value"),
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code != 0 and message in result.output, (args, result.output)


# --- indexes built before access tokens: refused clearly, rebuilt by reindex --all --------


def _old_keyword_index(folder: Path, chunk: IndexedChunk) -> None:
    """A tantivy index as shipped before access tokens (no `access` field)."""
    import tantivy

    from copilot.search.keyword_embedded import stemming_analyzer

    analyzer = "copilot_english"  # the one analysed field of that schema

    builder = tantivy.SchemaBuilder()
    old_fields = ("chunk_id", "file_id", "file_name", "owner_id", "scope", "department_id")
    for name in (*old_fields, "classification"):
        builder.add_text_field(name, stored=True, tokenizer_name="raw")
    builder.add_integer_field("ordinal", stored=True)
    builder.add_integer_field("page", stored=True)
    builder.add_text_field("text", stored=True, tokenizer_name=analyzer)
    index = tantivy.Index(builder.build(), path=str(folder))
    index.register_tokenizer(analyzer, stemming_analyzer("en"))
    writer = index.writer(15_000_000, 1)
    document = tantivy.Document()
    for name in ("chunk_id", "file_id", "file_name", "text"):
        document.add_text(name, getattr(chunk, name))
    for name in ("owner_id", "scope", "classification"):
        document.add_text(name, getattr(chunk.access, name))
    document.add_integer("ordinal", chunk.ordinal)
    writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()


def _old_vector_table(folder: Path, chunk: IndexedChunk, dimension: int) -> None:
    """A LanceDB table as shipped before access tokens (no `access` column)."""
    import lancedb
    import pyarrow as pa

    from copilot.search.vector_embedded import table_schema

    schema = table_schema(dimension)
    for name in ("access", "tags"):  # tags came later still
        schema = schema.remove(schema.get_field_index(name))
    row = {
        "chunk_id": [chunk.chunk_id],
        "file_id": [chunk.file_id],
        "file_name": [chunk.file_name],
        "page": [chunk.page],
        "ordinal": [chunk.ordinal],
        "text": [chunk.text],
        "owner_id": [chunk.access.owner_id],
        "scope": [chunk.access.scope],
        "department_id": [chunk.access.department_id],
        "classification": [chunk.access.classification],
        "vector": [list(chunk.vector or [])],
    }
    lancedb.connect(str(folder)).create_table("chunks", pa.table(row, schema=schema))


async def test_indexes_from_before_tokens_fail_clearly_and_reindex_all_rebuilds_them(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    text = "Echidna quarterly safety audit for the warehouse."
    result = await _company_file(kb, people, _write(tmp_path, "echidna.md", text))
    assert result.chunks == 1
    (hit,) = await kb.indexes.keyword.search("Echidna audit", people.bob.scope, 5)
    await kb.indexes.close()
    old = IndexedChunk(
        hit.chunk_id,
        hit.file_id,
        hit.file_name,
        hit.ordinal,
        hit.page,
        hit.text,
        ChunkAccess(people.admin.user_id, "company", None, "internal"),
        vector=await asyncio.to_thread(kb.embeddings.embed_query, text),
    )
    data = kb.settings.ensure_data_dir()
    for name in ("keyword-index", "vector-index"):
        shutil.rmtree(data / name)
        (data / name).mkdir()
    _old_keyword_index(data / "keyword-index", old)
    _old_vector_table(data / "vector-index", old, kb.embeddings.info.dimension)

    reopened = await KnowledgeBase.open(kb.settings, kb.sessions, embeddings=kb.embeddings)
    try:
        documents, report = await reopened.search.search("Echidna audit", people.bob.scope)
        assert documents == []
        assert set(report.missing) == {"keyword", "vector"}  # not a silent empty answer
        for error in report.missing.values():
            assert "copilot reindex --all" in error
        # The chat's chain says so too, instead of "nothing found in your documents".
        chain = AnswerChain(
            reopened.search,
            model=None,
            model_name="extractive",
            extractive=ExtractiveAnswerer(reopened.embeddings),
        )
        with pytest.raises(SearchUnavailable, match="copilot reindex --all"):
            await chain.answer("Echidna audit", people.bob.scope)

        assert (await reindex(reopened)).chunks == 1
        documents, report = await reopened.search.search("Echidna audit", people.bob.scope)
        assert report.missing == {}
        assert {d.metadata["file_id"] for d in documents} == {result.file_id}
        documents, _ = await reopened.search.search("Echidna audit", people.carol.scope)
        assert documents  # company, internal: carol too
    finally:
        await reopened.close()
