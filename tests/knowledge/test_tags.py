"""Setting a file's tags (`copilot.knowledge.tags`): the row, then both indexes in place;
a refused index change puts everything back. Real SQLite and embedded indexes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from copilot.db.models import File
from copilot.knowledge.ingest import IngestResult, Ownership, ingest_file
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.tags import (
    MAX_TAGS,
    TaggedIndex,
    TagsRefused,
    TagsUpdateFailed,
    clean_tags,
    set_tags,
)
from copilot.search.base import IndexedChunk
from tests.conftest import People, stored_counts


def test_tags_are_trimmed_kept_once_and_refused_when_they_make_no_sense() -> None:
    assert clean_tags([" HR ", "", "policies", "hr", " ", "Travel"]) == ["HR", "policies", "Travel"]
    assert clean_tags([]) == []
    with pytest.raises(TagsRefused, match="longer than 64"):
        clean_tags(["x" * 65])
    with pytest.raises(TagsRefused, match="control character"):
        clean_tags(["a\x00b"])
    with pytest.raises(TagsRefused, match=f"at most {MAX_TAGS}"):
        clean_tags([f"t{n}" for n in range(MAX_TAGS + 1)])


async def _company_file(kb: KnowledgeBase, people: People, tmp_path: Path) -> IngestResult:
    path = tmp_path / "wombat.md"
    path.write_text("Wombat logistics: the Tuesday lorry leaves the depot at six.")
    result = await ingest_file(kb, path, Ownership(uuid.UUID(people.admin.user_id), "company"))
    assert result.outcome == "indexed", result.error
    return result


async def _stored_tags(kb: KnowledgeBase, file_id: str) -> list[str]:
    async with kb.sessions() as session:
        return list((await session.get_one(File, uuid.UUID(file_id))).tags)


async def test_set_tags_writes_the_row_and_refuses_what_makes_no_sense(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    result = await _company_file(kb, people, tmp_path)
    change = await set_tags(kb, uuid.UUID(result.file_id), ["finance", " Finance", "travel"])
    assert (change.name, change.before, change.after) == ("wombat.md", [], ["finance", "travel"])
    assert await _stored_tags(kb, result.file_id) == ["finance", "travel"]
    again = await set_tags(kb, uuid.UUID(result.file_id), [])
    assert (again.before, again.after) == (["finance", "travel"], [])
    with pytest.raises(TagsRefused, match="no file with id"):
        await set_tags(kb, uuid.uuid4(), ["x"])
    async with kb.sessions() as session:
        (await session.get_one(File, uuid.UUID(result.file_id))).status = "processing"
        await session.commit()
    with pytest.raises(TagsRefused, match="being indexed right now"):
        await set_tags(kb, uuid.UUID(result.file_id), ["x"])
    assert await _stored_tags(kb, result.file_id) == []


class Retagging:
    """An index that takes tag changes (recording them), or refuses the one given."""

    def __init__(self, inner: object, name: str, refuse: list[str] | None = None) -> None:
        self.inner, self.name, self.refuse = inner, name, refuse
        self.tags: list[list[str]] = []

    async def update_tags(self, file_id: str, tags: Sequence[str]) -> None:
        if list(tags) == self.refuse:
            raise RuntimeError("disk full")
        self.tags.append(list(tags))

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_refused_index_change_puts_the_tags_back_everywhere(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    result = await _company_file(kb, people, tmp_path)
    file_id = uuid.UUID(result.file_id)
    keyword = Retagging(kb.indexes.keyword, "tantivy")
    vector = Retagging(kb.indexes.vector, "lancedb", refuse=["finance", "travel"])
    assert isinstance(keyword, TaggedIndex)
    kb.indexes.keyword, kb.indexes.vector = keyword, vector  # type: ignore[assignment]
    await set_tags(kb, file_id, ["finance"])
    assert keyword.tags == vector.tags == [["finance"]]
    with pytest.raises(TagsUpdateFailed, match="lancedb.*disk full.*nothing was changed"):
        await set_tags(kb, file_id, ["finance", "travel"])
    # The keyword index had taken the change: it got the old tags back, and so did the row.
    assert keyword.tags == [["finance"], ["finance", "travel"], ["finance"]]
    assert vector.tags == [["finance"], ["finance"]]
    assert await _stored_tags(kb, result.file_id) == ["finance"]


async def test_indexes_without_in_place_tags_get_the_files_chunks_rebuilt(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    assert not isinstance(kb.indexes.keyword, TaggedIndex)  # the embedded engines, here
    result = await _company_file(kb, people, tmp_path)
    before = await stored_counts(kb, result.file_id)
    await set_tags(kb, uuid.UUID(result.file_id), ["logistics"])
    assert await stored_counts(kb, result.file_id) == before == (1, 1, 1)
    query = "Wombat lorry depot"
    found = await kb.indexes.keyword.search(query, people.alice.scope, 3)
    found += await kb.indexes.vector.search(kb.embeddings.embed_query(query), people.alice.scope, 3)
    assert {hit.file_id for hit in found} == {result.file_id}


async def test_a_failed_rebuild_keeps_the_old_tags(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    result = await _company_file(kb, people, tmp_path)
    await set_tags(kb, uuid.UUID(result.file_id), ["logistics"])

    class Unreachable:
        def __init__(self, inner: object) -> None:
            self.inner, self.name = inner, "lancedb"

        async def add(self, chunks: object) -> None:
            raise RuntimeError("connection refused")

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    kb.indexes.vector = Unreachable(kb.indexes.vector)  # type: ignore[assignment]
    with pytest.raises(TagsUpdateFailed, match="connection refused.*keeps its old tags"):
        await set_tags(kb, uuid.UUID(result.file_id), ["finance"])
    assert await _stored_tags(kb, result.file_id) == ["logistics"]


async def test_after_a_tag_change_both_indexes_find_the_file_by_its_new_tag(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    if "tags" not in IndexedChunk.__dataclass_fields__:
        pytest.skip("tags in the indexes (search by tag) come with branch i13-cache")
    result = await _company_file(kb, people, tmp_path)
    await set_tags(kb, uuid.UUID(result.file_id), ["logistics"])
    query = "Wombat lorry depot"
    vector = kb.embeddings.embed_query(query)
    scope = people.alice.scope
    for tag, found in (("logistics", True), ("finance", False)):
        keyword_hits = await kb.indexes.keyword.search(query, scope, 5, tags=[tag])  # type: ignore[call-arg]
        vector_hits = await kb.indexes.vector.search(vector, scope, 5, tags=[tag])  # type: ignore[call-arg]
        for hits in (keyword_hits, vector_hits):
            assert any(hit.file_id == result.file_id for hit in hits) is found, tag
