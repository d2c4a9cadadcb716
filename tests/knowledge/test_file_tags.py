"""A file's tags (its row's `tags`) reach both indexes, on ingest and on reindex, and a
search (`copilot search --tag`) keeps only the files holding any of them."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from copilot.cli import app
from copilot.db.models import File
from copilot.knowledge.ingest import claim_file, ingest_file, reindex
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.tags import TagsRefused, set_file_tags
from tests.conftest import People, owned_by

QUESTION = "quokka feeding schedule"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(f"# Quokkas\n\n{text}\n")
    return path


async def _set_tags(kb: KnowledgeBase, file_id: str, tags: list[str]) -> None:
    async with kb.sessions() as session:
        row = await session.get_one(File, uuid.UUID(file_id))
        row.tags = tags
        await session.commit()


async def _tagged_hits(kb: KnowledgeBase, people: People, tags: list[str]) -> set[str]:
    documents, report = await kb.search.search(QUESTION, people.bob.scope, tags=tags)
    assert report.missing == {}
    return {str(d.metadata["file_id"]) for d in documents}


async def test_the_rows_tags_reach_both_indexes_on_ingest(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """A row admitted with tags (as a data source's sync does) is ingested with them."""
    path = _write(tmp_path, "feeding.md", "The quokka feeding schedule is posted at the gate.")
    ownership = owned_by(people.admin, scope="company")
    admitted = await claim_file(kb, path, ownership, status="pending")
    assert isinstance(admitted, File)
    await _set_tags(kb, str(admitted.id), ["zoo/animals", "feeding"])
    result = await ingest_file(kb, path, ownership)  # takes the pending row over
    assert result.outcome == "indexed" and result.file_id == str(admitted.id)
    assert await _tagged_hits(kb, people, ["feeding"]) == {result.file_id}
    assert await _tagged_hits(kb, people, ["other", "zoo/animals"]) == {result.file_id}
    assert await _tagged_hits(kb, people, ["other"]) == set()
    for engine in ("keyword", "vector"):  # each engine filters, not the fusion after
        retriever = kb.search.retriever(people.bob.scope, tags=["feeding"]).retrievers
        found = await (retriever[0] if engine == "keyword" else retriever[1]).ainvoke(QUESTION)
        assert {d.metadata["file_id"] for d in found} == {result.file_id}, engine


async def test_tags_changed_on_the_row_reach_the_indexes_on_reindex(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = _write(tmp_path, "feeding.md", "The quokka feeding schedule is posted at the gate.")
    result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))
    assert await _tagged_hits(kb, people, ["feeding"]) == set()
    await _set_tags(kb, result.file_id, ["feeding"])
    await reindex(kb, uuid.UUID(result.file_id))
    assert await _tagged_hits(kb, people, ["feeding"]) == {result.file_id}
    assert await _tagged_hits(kb, people, []) == {result.file_id}  # no tags: no filter
    await reindex(kb)  # a full rebuild keeps them too
    assert await _tagged_hits(kb, people, ["feeding"]) == {result.file_id}


async def test_a_rebuild_settles_tags_changed_after_it_read_the_file(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    """The rebuild read the row, then the tags changed (and reached only the live
    indexes): settling the file writes the new tags into the rebuilt ones too."""
    from copilot.knowledge.rebuild import _settle

    path = _write(tmp_path, "feeding.md", "The quokka feeding schedule is posted at the gate.")
    result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))
    async with kb.sessions() as session:
        as_read = await session.get_one(File, uuid.UUID(result.file_id))
    await _set_tags(kb, result.file_id, ["feeding"])
    assert await _tagged_hits(kb, people, ["feeding"]) == set()  # the indexes as rebuilt
    await _settle(kb, as_read, kb.indexes)
    assert await _tagged_hits(kb, people, ["feeding"]) == {result.file_id}


async def test_set_file_tags_reaches_both_indexes_and_refuses_what_cannot_be_stored(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    path = _write(tmp_path, "feeding.md", "The quokka feeding schedule is posted at the gate.")
    result = await ingest_file(kb, path, owned_by(people.admin, scope="company"))
    file_id = uuid.UUID(result.file_id)
    before = await kb.generation.current()
    assert await set_file_tags(kb, file_id, [" feeding ", "zoo", "feeding"]) == ["feeding", "zoo"]
    assert await kb.generation.current() > before  # cached results with the old tags retire
    assert await _tagged_hits(kb, people, ["zoo"]) == {result.file_id}
    async with kb.sessions() as session:
        assert (await session.get_one(File, file_id)).tags == ["feeding", "zoo"]
    await set_file_tags(kb, file_id, [])
    assert await _tagged_hits(kb, people, ["zoo"]) == set()
    for tags, message in (
        (["hr", " "], "must not be blank"),
        (["x" * 101], "at most 100 characters"),
        ([f"t{n}" for n in range(51)], "at most 50 tags"),
    ):
        with pytest.raises(TagsRefused, match=message):
            await set_file_tags(kb, file_id, tags)
    with pytest.raises(TagsRefused, match="no file with id"):
        await set_file_tags(kb, uuid.uuid4(), ["hr"])


def test_copilot_search_tag_filters_and_refuses_a_blank_tag(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"COPILOT_DATA_DIR": str(tmp_path / "data")}

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    def found(*tags: str) -> set[str]:
        options = [part for tag in tags for part in ("--tag", tag)]
        args = ("search", QUESTION, "--as", "ann@example.com", "--json", *options)
        return {hit["file_id"] for hit in json.loads(ok(*args))["hits"]}

    ok("setup", "--no-demo-admin")
    ok("users", "add", "ann@example.com", "--department", "ENG", "--password", "long enough")
    document = _write(tmp_path, "feeding.md", "The quokka feeding schedule.")
    ok("ingest", str(document), "--owner", "ann@example.com", "--scope", "company")
    (row,) = json.loads(ok("files", "list", "--json"))
    assert found() == {row["id"]}
    assert found("feeding") == set()
    assert "no results within your access tagged feeding" in ok(
        "search", QUESTION, "--as", "ann@example.com", "--tag", "feeding"
    )
    assert f"tags of {row['id']}: feeding, zoo" in ok(
        "files", "tags", row["id"], "--tag", "feeding", "--tag", "zoo"
    )
    assert found("feeding") == found("zoo", "other") == {row["id"]}
    assert found("other") == set()
    with sqlite3.connect(tmp_path / "data" / "copilot.db") as database:
        (stored,) = database.execute("SELECT tags FROM files").fetchone()
    assert json.loads(stored) == ["feeding", "zoo"]
    assert "(none)" in ok("files", "tags", row["id"])
    assert found("feeding") == set()
    blank = runner.invoke(
        app, ["search", QUESTION, "--as", "ann@example.com", "--tag", " "], env=env
    )
    assert blank.exit_code != 0 and "--tag: a tag to search for must not be blank" in blank.output
