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
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.knowledge.test_ingest as ingest_tests
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
