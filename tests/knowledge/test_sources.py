"""Data sources kept in step by sync jobs, on SQLite and PostgreSQL with the embedded indexes:
a folder synced, a file edited (its new version answers, its old text never again), a
file deleted or renamed at the source, one that fails to parse, two syncs at once, and a
sync that crashed half-way repaired by the next."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from copilot.db.models import Chunk, DataSource, File, FileVersion, SyncJob
from copilot.db.types import utcnow
from copilot.knowledge import versions
from copilot.knowledge.ingest import file_sha256, ingest_file, reindex
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources import (
    NewSource,
    SourceError,
    SyncAlreadyRunning,
    add_source,
    list_sources,
    remove_source,
    sync_source,
)
from copilot.knowledge.sources.sync import INTERRUPTED
from copilot.search.base import SearchIndexError
from copilot.settings import Settings
from copilot.users import Principal
from tests.conftest import FIXTURES, People, open_kb, owned_by, stored_counts

needs_fixtures = pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")

TRAVEL = "# Travel\n\nEmployees book economy class for flights under six hours.\n"
TRAVEL_V2 = "# Travel\n\nEmployees may book premium economy for flights over four hours.\n"
HOTELS = "# Hotels\n\nHotel costs are refunded up to 150 euros a night.\n"


@pytest.fixture
async def kb(database_settings: Settings, embeddings: object) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base on SQLite, then on PostgreSQL (`people` builds on it too)."""
    async with open_kb(database_settings, embeddings) as knowledge:  # type: ignore[arg-type]
        yield knowledge


@pytest.fixture
def share(tmp_path: Path) -> Path:
    folder = tmp_path / "share"
    _write(folder / "policies" / "travel.md", TRAVEL)
    _write(folder / "hotels.md", HOTELS)
    return folder


def _write(path: Path, text: str, *, later: float = 0.0) -> Path:
    """Write `text`; `later` seconds are added to the modification time, as an edit has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if later:
        moment = time.time() + later
        os.utime(path, (moment, moment))
    return path


async def _add(
    kb: KnowledgeBase, people: People, folder: Path, name: str = "policies", **kwargs: object
) -> DataSource:
    async with kb.sessions() as session:
        return await add_source(
            session,
            NewSource(name, folder, uuid.UUID(people.admin.user_id), **kwargs),  # type: ignore[arg-type]
        )


async def _texts(kb: KnowledgeBase, query: str, who: Principal) -> list[str]:
    """What search answers with, through the database check the chat and CLI use."""
    documents, report = await kb.search.search(query, who.scope, k=20)
    assert report.missing == {}
    return [d.page_content for d in await kb.locations(documents)]


async def _files(kb: KnowledgeBase, source: DataSource) -> dict[str, File]:
    async with kb.sessions() as session:
        rows = await session.scalars(select(File).where(File.source_id == source.id))
        return {f.source_path or "": f for f in rows}


async def _versions(kb: KnowledgeBase, file_id: uuid.UUID) -> list[tuple[int, str]]:
    async with kb.sessions() as session:
        rows = await session.execute(
            select(FileVersion.version, FileVersion.sha256)
            .where(FileVersion.file_id == file_id)
            .order_by(FileVersion.version)
        )
        return [(row.version, row.sha256) for row in rows]


def _counts(job: SyncJob) -> tuple[int, int, int, int, int]:
    return job.added, job.updated, job.deleted, job.unchanged, job.failed


async def _in_step(kb: KnowledgeBase, file: File) -> None:
    """The file's chunks: as many rows as entries in each index, as the file says."""
    rows, keyword, vector = await stored_counts(kb, str(file.id))
    assert (rows, keyword, vector) == (file.chunk_count,) * 3 and rows > 0


async def test_a_folder_synced_with_its_scope_tags_and_first_versions(
    kb: KnowledgeBase, people: People, share: Path, tmp_path: Path
) -> None:
    _write(share / ".hidden.md", "# Secret\n\nThe hidden budget is nine million.\n")
    _write(share / ".git" / "notes.md", "# Notes\n\nThe hidden budget is nine million.\n")
    outside = _write(tmp_path / "elsewhere.md", "# Elsewhere\n\nThe hidden budget is nine.\n")
    (share / "link.md").symlink_to(outside)
    source = await _add(kb, people, share, scope="department", department_code="ENG", tags=["hr"])

    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job), job.errors) == ("succeeded", (2, 0, 0, 0, 0), [])
    assert job.finished_at is not None and job.trigger == "cli" and not job.full
    files = await _files(kb, source)
    assert set(files) == {"policies/travel.md", "hotels.md"}  # no hidden file, no escape
    travel = files["policies/travel.md"]
    assert travel.tags == ["hr", "policies"] and files["hotels.md"].tags == ["hr"]
    assert (travel.scope, travel.status, travel.version) == ("department", "ready", 1)
    assert travel.owner_id == uuid.UUID(people.admin.user_id)
    assert travel.source_modified_at is not None
    assert await _versions(kb, travel.id) == [(1, travel.sha256)]
    await _in_step(kb, travel)
    # The source's access: its department reads it, another department does not.
    assert any("economy class" in t for t in await _texts(kb, "economy flights", people.alice))
    assert not await _texts(kb, "economy flights", people.carol)
    assert not await _texts(kb, "hidden budget nine million", people.admin)

    again = await sync_source(kb, source.id, trigger="schedule")
    assert (again.status, _counts(again)) == ("succeeded", (0, 0, 0, 2, 0))
    async with kb.sessions() as session:
        [summary] = await list_sources(session)
    assert summary.files == 2 and summary.last_job is not None
    assert summary.last_job.id == again.id and summary.source.last_synced_at is not None


async def test_an_edited_file_answers_with_its_new_version_only(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    before = (await _files(kb, source))["policies/travel.md"]

    _write(share / "policies" / "travel.md", TRAVEL_V2, later=5)
    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("succeeded", (0, 1, 0, 1, 0))
    after = (await _files(kb, source))["policies/travel.md"]
    assert after.id == before.id and after.version == 2  # the same file, its next version
    assert await _versions(kb, after.id) == [(1, before.sha256), (2, after.sha256)]
    assert after.sha256 != before.sha256
    await _in_step(kb, after)  # the old version's chunks left both indexes
    for query in ("economy class flights under six hours", "premium economy four hours"):
        texts = await _texts(kb, query, people.alice)
        assert any("premium economy" in t for t in texts)
        assert not any("under six hours" in t for t in texts)
    # Only its time changed: unchanged (the sha256 says so), and its time is taken.
    _write(share / "policies" / "travel.md", TRAVEL_V2, later=10)
    job = await sync_source(kb, source.id)
    assert _counts(job) == (0, 0, 0, 2, 0)
    assert (await _files(kb, source))["policies/travel.md"].version == 2


async def test_a_reindexed_later_version_keeps_its_chunk_ids(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    _write(share / "policies" / "travel.md", TRAVEL_V2, later=5)
    await sync_source(kb, source.id)
    travel = (await _files(kb, source))["policies/travel.md"]

    await reindex(kb, travel.id)  # the index ids must stay the rows' (version 2's)

    await _in_step(kb, travel)
    assert any("premium economy" in t for t in await _texts(kb, "premium economy", people.alice))


async def test_the_version_switch_leaves_no_moment_with_neither_or_both(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    file = (await _files(kb, source))["policies/travel.md"]
    path = _write(share / "policies" / "travel.md", TRAVEL_V2, later=5)
    content = versions.Content(path, file_sha256(path), path.stat().st_size)
    query = "economy flights hours"

    prepared = await versions.prepare(kb, file.id, content)
    await versions.add_to_indexes(kb, prepared)
    # Step 1 done: both versions are in both indexes, the old one alone answers.
    _, keyword, vector = await stored_counts(kb, str(file.id))
    assert keyword == vector == 2 * len(prepared.chunks)
    texts = await _texts(kb, query, people.alice)
    assert any("under six hours" in t for t in texts)
    assert not any("premium economy" in t for t in texts)

    await versions.switch(kb, prepared)
    # Step 2 (one commit) done: the old chunks are still in the indexes, the new answer.
    texts = await _texts(kb, query, people.alice)
    assert any("premium economy" in t for t in texts)
    assert not any("under six hours" in t for t in texts)

    await versions.prune(kb, prepared)
    _, keyword, vector = await stored_counts(kb, str(file.id))
    assert keyword == vector == len(prepared.chunks)


async def test_a_file_deleted_at_the_source_leaves_both_indexes(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    hotels = (await _files(kb, source))["hotels.md"]
    assert await _texts(kb, "hotel costs refunded", people.alice)

    (share / "hotels.md").unlink()
    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("succeeded", (0, 0, 1, 1, 0))
    assert await kb.indexes.keyword.count(str(hotels.id)) == 0
    assert await kb.indexes.vector.count(str(hotels.id)) == 0
    assert await stored_counts(kb, str(hotels.id)) == (0, 0, 0)
    assert set(await _files(kb, source)) == {"policies/travel.md"}
    assert not any("150 euros" in t for t in await _texts(kb, "hotel costs", people.alice))


async def test_a_file_that_cannot_be_removed_stays_listed_for_the_next_sync(
    kb: KnowledgeBase, people: People, share: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    (share / "hotels.md").unlink()

    async def refuse(file_id: str) -> None:
        raise SearchIndexError("tantivy", "delete failed: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(kb.indexes.keyword, "delete_file", refuse)
        job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("partial", (0, 0, 0, 1, 1))
    assert (
        "hotels.md" in job.errors[0]["error"] and "could not be removed" in job.errors[0]["error"]
    )
    assert "hotels.md" in await _files(kb, source)
    job = await sync_source(kb, source.id)  # the index is back
    assert (job.status, job.deleted) == ("succeeded", 1)
    assert set(await _files(kb, source)) == {"policies/travel.md"}


async def test_a_renamed_file_answers_under_its_new_path_only(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    old = (await _files(kb, source))["hotels.md"]

    (share / "archive").mkdir()
    (share / "hotels.md").rename(share / "archive" / "hotel-rules.md")
    job = await sync_source(kb, source.id)

    assert _counts(job) == (1, 0, 1, 1, 0)  # a rename is a delete and an add
    files = await _files(kb, source)
    assert set(files) == {"policies/travel.md", "archive/hotel-rules.md"}
    new = files["archive/hotel-rules.md"]
    assert new.id != old.id and new.tags == ["archive"] and new.sha256 == old.sha256
    assert await stored_counts(kb, str(old.id)) == (0, 0, 0)
    await _in_step(kb, new)
    documents, _ = await kb.search.search("hotel costs refunded", people.alice.scope, k=20)
    located = await kb.locations(documents)
    assert {d.metadata["file_id"] for d in located if "150 euros" in d.page_content} == {
        str(new.id)
    }


@needs_fixtures
async def test_a_file_that_fails_to_parse_does_not_stop_the_job(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    shutil.copyfile(FIXTURES / "pdf_password.pdf", share / "locked.pdf")
    (share / "empty.md").touch()
    source = await _add(kb, people, share)

    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("partial", (2, 0, 0, 0, 2))
    errors = {e["path"]: e["error"] for e in job.errors}
    assert set(errors) == {"locked.pdf", "empty.md"}
    assert "password" in errors["locked.pdf"].lower() and "empty" in errors["empty.md"]
    files = await _files(kb, source)
    locked = files["locked.pdf"]
    assert (locked.status, locked.error) == ("failed", errors["locked.pdf"])
    assert await stored_counts(kb, str(locked.id)) == (0, 0, 0)
    await _in_step(kb, files["hotels.md"])
    # A failed file is tried again each sync (it may have been a passing problem).
    again = await sync_source(kb, source.id)
    assert (again.status, _counts(again)) == ("partial", (0, 0, 0, 2, 2))


@needs_fixtures
async def test_a_changed_file_that_fails_keeps_its_current_version(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    shutil.copyfile(FIXTURES / "pdf_multi-column.pdf", share / "report.pdf")
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    # Its next version is locked with a password: it cannot be read.
    shutil.copyfile(FIXTURES / "pdf_password.pdf", share / "report.pdf")
    os.utime(share / "report.pdf", (time.time() + 5, time.time() + 5))

    job = await sync_source(kb, source.id)

    report = (await _files(kb, source))["report.pdf"]
    assert (job.status, job.failed, [e["path"] for e in job.errors]) == (
        "partial",
        1,
        ["report.pdf"],
    )
    assert (report.status, report.version, report.error) == ("ready", 1, job.errors[0]["error"])
    await _in_step(kb, report)
    assert await _versions(kb, report.id) == [(1, report.sha256)]


async def test_two_syncs_of_one_source_never_run_at_once(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)

    outcomes = await asyncio.gather(
        sync_source(kb, source.id), sync_source(kb, source.id), return_exceptions=True
    )

    refused = [o for o in outcomes if isinstance(o, SyncAlreadyRunning)]
    done = [o for o in outcomes if isinstance(o, SyncJob)]
    assert len(refused) == 1 and len(done) == 1, outcomes
    assert "running already" in str(refused[0]) and f"process {os.getpid()}" in str(refused[0])
    assert done[0].added == 2
    # A running job whose process lives (this one) refuses a sync too.
    async with kb.sessions() as session:
        session.add(SyncJob(source_id=source.id, status="running", claimant=_claimant()))
        await session.commit()
    with pytest.raises(SyncAlreadyRunning):
        await sync_source(kb, source.id)


def _claimant(*, started: float | None = None) -> str:
    """This process as a job's claimant; with another start time: a process that ended."""
    import psutil

    started = psutil.Process().create_time() if started is None else started
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": started})


async def test_a_sync_that_crashed_half_way_is_repaired_by_the_next(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    travel = (await _files(kb, source))["policies/travel.md"]
    # The crashed sync: it had put travel's next version in the indexes (not switched to),
    # claimed a new file and indexed part of it, and died (its claimant is gone).
    path = _write(share / "policies" / "travel.md", TRAVEL_V2 + "More.\n" * 40, later=5)
    content = versions.Content(path, file_sha256(path), path.stat().st_size)
    await versions.add_to_indexes(kb, await versions.prepare(kb, travel.id, content))
    _write(share / "policies" / "travel.md", TRAVEL_V2, later=10)  # edited again meanwhile
    meals = _write(share / "meals.md", "# Meals\n\nMeals are refunded up to 30 euros a day.\n")
    async with kb.sessions() as session:
        crashed = SyncJob(
            source_id=source.id, status="running", claimant=_claimant(started=1.0), errors=[]
        )
        half = File(
            owner_id=source.owner_id,
            original_name="meals.md",
            mime_type="text/markdown",
            size_bytes=meals.stat().st_size,
            sha256=file_sha256(meals),
            scope="company",
            status="processing",
            source_id=source.id,
            source_path="meals.md",
        )
        session.add_all([crashed, half])
        await session.commit()
    content = versions.Content(meals, half.sha256, half.size_bytes)
    await versions.add_to_indexes(kb, await versions.prepare(kb, half.id, content))
    assert await kb.indexes.keyword.count(str(half.id)) > 0

    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("succeeded", (1, 1, 0, 1, 0))
    async with kb.sessions() as session:
        old = await session.get_one(SyncJob, crashed.id)
        assert (old.status, old.errors) == ("failed", [{"path": "", "error": INTERRUPTED}])
        assert old.finished_at is not None
    files = await _files(kb, source)
    assert files["meals.md"].id == half.id and files["meals.md"].status == "ready"
    assert files["policies/travel.md"].version == 2
    for file in files.values():
        await _in_step(kb, file)  # nothing the crash left behind in either index
        assert file.progress is None
    texts = await _texts(kb, "premium economy more", people.alice)
    assert not any("More." in t for t in texts)


async def test_a_crash_after_the_switch_leaves_nothing_behind(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    travel = (await _files(kb, source))["policies/travel.md"]
    path = _write(share / "policies" / "travel.md", TRAVEL_V2, later=5)
    content = versions.Content(path, file_sha256(path), path.stat().st_size, None)
    prepared = await versions.prepare(kb, travel.id, content)
    await versions.add_to_indexes(kb, prepared)
    await versions.switch(kb, prepared)  # and died before pruning the old chunks
    async with kb.sessions() as session:
        session.add(SyncJob(source_id=source.id, status="running", claimant=_claimant(started=1)))
        await session.commit()

    job = await sync_source(kb, source.id)

    # The same bytes as its current version: unchanged, and the old chunks are gone.
    assert (job.status, _counts(job)) == ("succeeded", (0, 0, 0, 2, 0))
    await _in_step(kb, (await _files(kb, source))["policies/travel.md"])


@needs_fixtures
async def test_a_copy_of_the_shared_fixtures_synced_then_edited_and_pruned(
    kb: KnowledgeBase, people: People, tmp_path: Path
) -> None:
    folder = tmp_path / "fixtures"
    (folder / "docs").mkdir(parents=True)
    for name in ("umlauts-utf8.md", "simple-table.md", "fake.docx", "fake-html-lang-de.html"):
        shutil.copyfile(FIXTURES / name, folder / "docs" / name)
    source = await _add(kb, people, folder, "fixtures")

    job = await sync_source(kb, source.id)

    assert (job.status, _counts(job)) == ("succeeded", (4, 0, 0, 0, 0)), job.errors
    files = await _files(kb, source)
    for file in files.values():
        await _in_step(kb, file)
        assert file.tags == ["docs"]
    (folder / "docs" / "fake.docx").unlink()
    _write(folder / "docs" / "simple-table.md", "# Table\n\nThe zebra count is 42.\n", later=5)
    job = await sync_source(kb, source.id)
    assert _counts(job) == (0, 1, 1, 2, 0)
    assert any("zebra count" in t for t in await _texts(kb, "zebra count", people.alice))
    assert await stored_counts(kb, str(files["docs/fake.docx"].id)) == (0, 0, 0)


async def test_an_upload_records_its_first_version(kb: KnowledgeBase, people: People) -> None:
    path = _write(Path("notes.md"), HOTELS)
    result = await ingest_file(kb, path, owned_by(people.alice))
    file_id = uuid.UUID(result.file_id)
    assert await _versions(kb, file_id) == [(1, file_sha256(path))]
    # The same bytes as a source's file are still an upload of their own.
    async with kb.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FileVersion)) == 1


async def test_removing_a_source_removes_its_files_everywhere(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    file_ids = [f.id for f in (await _files(kb, source)).values()]

    assert await remove_source(kb, "policies") == 2

    for file_id in file_ids:
        assert await stored_counts(kb, str(file_id)) == (0, 0, 0)
    async with kb.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DataSource)) == 0
        assert await session.scalar(select(func.count()).select_from(SyncJob)) == 0
        assert await session.scalar(select(func.count()).select_from(Chunk)) == 0
    with pytest.raises(SourceError, match="no data source named 'policies'"):
        await remove_source(kb, "policies")


async def test_a_source_being_synced_is_not_removed(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    async with kb.sessions() as session:
        session.add(SyncJob(source_id=source.id, status="running", claimant=_claimant()))
        await session.commit()

    with pytest.raises(SourceError, match="policies is being synced; remove it once"):
        await remove_source(kb, "policies")

    async with kb.sessions() as session:
        assert await session.get(DataSource, source.id) is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"folder": "missing"}, "does not exist"),
        ({"scope": "department"}, "needs --department"),
        ({"scope": "department", "department_code": "NOPE"}, "no department with code 'NOPE'"),
        ({"department_code": "ENG"}, "give no --department"),
        ({"scope": "personal"}, "scope must be department or company"),
        ({"classification": "top"}, "classification must be one of"),
        ({"name": "  "}, "needs a name"),
        ({"name": "policies"}, "named 'policies' exists already"),
    ],
)
async def test_a_source_that_cannot_be_added_says_why(
    kb: KnowledgeBase, people: People, share: Path, change: dict[str, str], message: str
) -> None:
    await _add(kb, people, share)
    options = dict(change)  # the parameters are shared by both engines' runs
    folder = share / options.pop("folder") if "folder" in options else share
    name = options.pop("name", "other")
    with pytest.raises(SourceError, match=message):
        await _add(kb, people, folder, name, **options)


async def test_a_sync_of_a_folder_gone_fails_and_prunes_nothing(
    kb: KnowledgeBase, people: People, share: Path, tmp_path: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    share.rename(tmp_path / "unmounted")

    job = await sync_source(kb, source.id)

    assert (job.status, job.deleted) == ("failed", 0)
    assert "does not exist" in job.errors[0]["error"]
    assert len(await _files(kb, source)) == 2
    assert any("150 euros" in t for t in await _texts(kb, "hotel costs", people.alice))
    assert job.finished_at is not None and job.finished_at <= utcnow()


async def test_a_folder_emptied_is_pruned_only_by_a_full_sync(
    kb: KnowledgeBase, people: People, share: Path
) -> None:
    source = await _add(kb, people, share)
    await sync_source(kb, source.id)
    shutil.rmtree(share)
    share.mkdir()  # an unmounted share's mount point

    job = await sync_source(kb, source.id)

    assert (job.status, job.deleted) == ("failed", 0)
    assert "lists no files, but 2 were synced" in job.errors[0]["error"]
    assert len(await _files(kb, source)) == 2
    job = await sync_source(kb, source.id, full=True)
    assert (job.status, job.deleted) == ("succeeded", 2)
    assert await _files(kb, source) == {}
