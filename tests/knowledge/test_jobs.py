"""The background ingestion queue: durable in files.status, resumed after a crash, and never
an unhandled IntegrityError when the same bytes arrive twice at once (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot import users
from copilot.bench.serving import embedded_redis_pid, still_running
from copilot.db import migrate
from copilot.db.engine import create_engine, session_factory
from copilot.db.models import Chunk, File
from copilot.db.seed import seed_defaults
from copilot.knowledge.claimant import Claimant, this_process
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import IngestResult, Ownership, ingest_file
from copilot.knowledge.jobs import (
    INTERRUPTED,
    IngestionQueue,
    IngestProgress,
    Recovered,
    admit,
    recover_interrupted,
    watch,
)
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import Settings
from copilot.state.redis import connect_redis
from tests.conftest import FIXTURES, open_kb

NOTE = "# Expenses\n\nTaxis after 22:00 are reimbursed when the office is closed.\n"


@pytest.fixture
async def any_kb(
    database_settings: Settings, embeddings: LocalMiniLM
) -> AsyncIterator[KnowledgeBase]:
    async with open_kb(database_settings, embeddings) as knowledge:
        yield knowledge


async def _owner(kb: KnowledgeBase, name: str = "alice") -> Ownership:
    async with kb.sessions() as session:
        user = await users.create_user(
            session,
            f"{name}@example.com",
            display_name=name,
            password=None,
            role="Regular User",
            department="ENG",
        )
    return Ownership(user.id)


async def _row(kb: KnowledgeBase, file_id: uuid.UUID | str) -> File:
    async with kb.sessions() as session:
        return await session.get_one(File, uuid.UUID(str(file_id)), populate_existing=True)


async def _chunk_rows(kb: KnowledgeBase, file_id: uuid.UUID) -> int:
    async with kb.sessions() as session:
        return int(await session.scalar(select(func.count()).where(Chunk.file_id == file_id)) or 0)


async def _indexed(kb: KnowledgeBase, file_id: uuid.UUID) -> tuple[int, int]:
    return (
        await kb.indexes.keyword.count(str(file_id)),
        await kb.indexes.vector.count(str(file_id)),
    )


async def _crash_mid_ingestion(
    kb: KnowledgeBase, file_id: uuid.UUID, claimant: Claimant | None = None
) -> None:
    """What a kill leaves: the row processing, with chunks in the database and both indexes
    (and the claimant that was running it, if given), its heartbeat just now."""
    progress = {"claimant": claimant.as_json()} if claimant else {}
    async with kb.sessions() as session:
        await session.execute(
            update(File).where(File.id == file_id).values(status="processing", progress=progress)
        )
        await session.commit()


def _killed_process() -> Claimant:
    """A real process of this host, recorded as a claimant, then killed (and reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claimant = Claimant.of(process.pid)
    finally:
        process.kill()
        process.wait(30)
    return claimant


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


# --- Concurrent uploads of the same bytes ---------------------------------------------------


def lookups_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two row lookups wait for each other: both uploads find no row, so both
    insert one, and the database's unique constraint decides (the race, every time)."""
    barrier = asyncio.Barrier(2)
    calls = 0
    scalar = AsyncSession.scalar

    async def meeting(self: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await scalar(self, *args, **kwargs)
        if calls <= 2:
            await asyncio.wait_for(barrier.wait(), 30)
        return result

    monkeypatch.setattr(AsyncSession, "scalar", meeting)


async def test_concurrent_ingests_of_the_same_bytes_give_one_file_and_a_duplicate(
    any_kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _owner(any_kb)
    lookups_meet(monkeypatch)
    paths = [_write(tmp_path, f"copy{i}.md", NOTE) for i in range(2)]
    results = await asyncio.gather(*(ingest_file(any_kb, p, owner) for p in paths))
    assert sorted(r.outcome for r in results) == ["duplicate", "indexed"]
    assert results[0].file_id == results[1].file_id
    async with any_kb.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(File)) == 1


async def test_concurrent_admissions_of_the_same_bytes_queue_it_once(
    any_kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _owner(any_kb)
    lookups_meet(monkeypatch)
    paths = [_write(tmp_path, f"copy{i}.md", NOTE) for i in range(3)]
    admitted = await asyncio.gather(*(admit(any_kb, p, owner) for p in paths))
    files = [a for a in admitted if isinstance(a, File)]
    duplicates = [a for a in admitted if isinstance(a, IngestResult)]
    assert len(files) == 1 and len(duplicates) == 2
    assert all(d.outcome == "duplicate" and d.file_id == str(files[0].id) for d in duplicates)
    row = await _row(any_kb, files[0].id)
    assert row.status == "pending" and Path(row.storage_path).read_text() == NOTE


# --- The queue -----------------------------------------------------------------------------


async def test_a_submitted_upload_is_ingested_in_the_background_with_progress(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    queue = IngestionQueue(any_kb, sweep_seconds=None)
    await queue.start()
    try:
        upload = _write(tmp_path, "upload", NOTE)
        admitted = await queue.submit(upload, owner, filename="expenses.md")
        assert isinstance(admitted, File)
        upload.unlink()  # the queue reads its own copy
        seen: list[str] = []
        rows = await watch(any_kb, [admitted.id], lambda r: seen.append(r[0].status))
    finally:
        await queue.stop()
    assert rows[0].status == "ready" and rows[0].chunk_count >= 1 and rows[0].progress is None
    assert seen[0] in ("pending", "processing") and seen[-1] == "ready"
    assert await _indexed(any_kb, admitted.id) == (rows[0].chunk_count, rows[0].chunk_count)


async def test_a_restart_resumes_an_interrupted_file_and_drops_what_it_had_written(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    admitted = await admit(any_kb, _write(tmp_path, "expenses.md", NOTE), owner)
    assert isinstance(admitted, File)
    # Ingested as far as both indexes, then "killed" before it was marked ready.
    first = await ingest_file(any_kb, Path(admitted.storage_path), owner, filename="expenses.md")
    assert first.outcome == "indexed"
    chunks = first.chunks
    await _crash_mid_ingestion(any_kb, admitted.id)
    assert (await ingest_file(any_kb, tmp_path / "expenses.md", owner)).outcome == "duplicate"

    recovered = await recover_interrupted(any_kb, stale_after=0)
    assert recovered.resumed == [admitted.id] and recovered.failed == []
    row = await _row(any_kb, admitted.id)
    assert row.status == "pending"
    assert await _chunk_rows(any_kb, admitted.id) == 0
    assert await _indexed(any_kb, admitted.id) == (0, 0)

    queue = IngestionQueue(any_kb, sweep_seconds=None)  # the restarted app's queue
    await queue.start()
    try:
        rows = await watch(any_kb, [admitted.id], lambda _: None)
    finally:
        await queue.stop()
    assert rows[0].status == "ready" and rows[0].chunk_count == chunks
    assert await _indexed(any_kb, admitted.id) == (chunks, chunks)  # once each, not twice


async def test_an_interrupted_file_without_its_original_fails_with_the_reason(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    path = _write(tmp_path, "expenses.md", NOTE)
    first = await ingest_file(any_kb, path, owner)
    file_id = uuid.UUID(first.file_id)
    row = await _row(any_kb, file_id)
    Path(row.storage_path).unlink()
    await _crash_mid_ingestion(any_kb, file_id)

    recovered = await recover_interrupted(any_kb, stale_after=0)
    assert recovered.failed == [file_id] and recovered.resumed == []
    row = await _row(any_kb, file_id)
    assert row.status == "failed" and row.error == INTERRUPTED and "interrupted" in INTERRUPTED
    assert await _chunk_rows(any_kb, file_id) == 0 and await _indexed(any_kb, file_id) == (0, 0)

    again = await admit(any_kb, path, owner)  # the same bytes again: taken, not a duplicate
    assert isinstance(again, File) and again.id == file_id and again.status == "pending"
    assert again.error is None


async def test_recovery_leaves_a_file_another_process_is_ingesting(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    first = await ingest_file(any_kb, _write(tmp_path, "expenses.md", NOTE), owner)
    file_id = uuid.UUID(first.file_id)
    await _crash_mid_ingestion(any_kb, file_id)  # its heartbeat: just now
    recovered = await recover_interrupted(any_kb)
    assert recovered.resumed == recovered.failed == []
    assert (await _row(any_kb, file_id)).status == "processing"
    assert await _indexed(any_kb, file_id) == (first.chunks, first.chunks)


async def test_a_file_whose_claimant_was_killed_is_recovered_at_once(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    first = await ingest_file(any_kb, _write(tmp_path, "expenses.md", NOTE), owner)
    file_id = uuid.UUID(first.file_id)
    await _crash_mid_ingestion(any_kb, file_id, _killed_process())  # heartbeat: just now
    recovered = await recover_interrupted(any_kb)  # the 30 s heartbeat rule
    assert recovered.resumed == [file_id]
    assert (await _row(any_kb, file_id)).status == "pending"
    assert await _chunk_rows(any_kb, file_id) == 0
    assert await _indexed(any_kb, file_id) == (0, 0)


@pytest.mark.parametrize(
    "claimant",
    [
        pytest.param(lambda: this_process(), id="a live process of this host"),
        pytest.param(
            lambda: Claimant("another-host.example", _killed_process().pid, 0.0),
            id="another host (its pid means nothing here)",
        ),
    ],
)
async def test_a_live_or_remote_claimant_keeps_the_heartbeat_rule(
    any_kb: KnowledgeBase, tmp_path: Path, claimant: Any
) -> None:
    owner = await _owner(any_kb)
    first = await ingest_file(any_kb, _write(tmp_path, "expenses.md", NOTE), owner)
    file_id = uuid.UUID(first.file_id)
    await _crash_mid_ingestion(any_kb, file_id, claimant())
    assert await recover_interrupted(any_kb) == Recovered()
    assert (await _row(any_kb, file_id)).status == "processing"
    assert await _indexed(any_kb, file_id) == (first.chunks, first.chunks)
    # Once its heartbeat is stale, it is recovered whoever claimed it.
    assert (await recover_interrupted(any_kb, stale_after=0)).resumed == [file_id]


def test_a_reused_pid_is_not_the_claimant() -> None:
    me = this_process()
    assert not me.is_gone()
    assert Claimant(me.host, me.pid, me.started - 3600).is_gone()  # same pid, another start
    assert _killed_process().is_gone()
    assert Claimant.from_progress({"claimant": me.as_json(), "stage": "embedding"}) == me
    assert Claimant.from_progress({"stage": "embedding"}) is None
    assert Claimant.from_progress(None) is None


async def test_stopping_the_queue_puts_a_running_file_back_in_the_queue(
    any_kb: KnowledgeBase, tmp_path: Path
) -> None:
    owner = await _owner(any_kb)
    text = "".join(f"Paragraph {i} about travel, hotels and taxis.\n\n" for i in range(400))
    queue = IngestionQueue(any_kb, sweep_seconds=None)
    await queue.start()
    admitted = await queue.submit(_write(tmp_path, "long.md", text), owner)
    assert isinstance(admitted, File)
    deadline = time.monotonic() + 60
    while (await _row(any_kb, admitted.id)).status != "processing":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await queue.stop()
    row = await _row(any_kb, admitted.id)
    assert row.status == "pending" and row.progress is None
    assert await _chunk_rows(any_kb, admitted.id) == 0
    assert await _indexed(any_kb, admitted.id) == (0, 0)


def test_progress_follows_the_pipeline_reports() -> None:
    progress = IngestProgress("parsing")
    assert progress.percent == 0
    progress = progress.after("parsing", 0, 1).after("parsing", 872, 872)
    assert (progress.stage, progress.pages, progress.percent) == ("chunking", 872, 10)
    progress = progress.after("chunking", 1200, 1200)
    assert (progress.stage, progress.done, progress.total) == ("embedding", 0, 1200)
    progress = progress.after("embedding", 600, 1200)
    assert (progress.pages, progress.chunks, progress.percent) == (872, 1200, 52)
    progress = progress.after("indexing", 2, 2)
    assert progress.percent == 100 and progress.as_json()["percent"] == 100


# --- A kill during `copilot ingest` ---------------------------------------------------------


HANDBOOK = FIXTURES / "handbook-872p.docx"


@pytest.mark.skipif(not HANDBOOK.exists(), reason="needs ../shared/fixtures/handbook-872p.docx")
async def test_a_kill_during_copilot_ingest_leaves_nothing_stuck_or_half_indexed(
    sqlite_settings: Settings, embeddings: LocalMiniLM
) -> None:
    migrate.upgrade(sqlite_settings)
    async with open_kb(sqlite_settings, embeddings) as kb, kb.sessions() as session:
        await seed_defaults(session)
        await users.create_user(
            session,
            "owner@example.com",
            display_name="Owner",
            password=None,
            role="Super Admin",
            department="ADM",
        )
    environment = {
        **os.environ,
        "COPILOT_DATA_DIR": str(sqlite_settings.data_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-c", "from copilot.cli import app; app()", "ingest", str(HANDBOOK)]
    process = subprocess.Popen(  # noqa: ASYNC220 (started once; the test then polls)
        [*command, "--owner", "owner@example.com"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Only the database is read meanwhile: the process holds the index writers.
        engine = create_engine(sqlite_settings)
        try:
            file = await _wait_for_embedding(session_factory(engine), process)
        finally:
            await engine.dispose()
        claimant, running = Claimant.from_progress(file.progress), Claimant.of(process.pid)
        assert claimant is not None and (claimant.host, claimant.pid) == (running.host, running.pid)
        assert claimant.started == pytest.approx(running.started, abs=0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        assert file.status == "processing"

        async with open_kb(sqlite_settings, embeddings) as kb:  # the next start, at once:
            recovered = await recover_interrupted(kb)  # its claimant is gone, no 30 s wait
            assert recovered.resumed == [file.id]
            async with kb.sessions() as session:
                statuses = (await session.scalars(select(File.status))).all()
                not_ready = (
                    await session.scalars(select(File.id).where(File.status != "ready"))
                ).all()
            assert "processing" not in statuses and statuses == ["pending"]
            for file_id in not_ready:
                assert await _chunk_rows(kb, file_id) == 0
                assert await _indexed(kb, file_id) == (0, 0)
            assert Path((await _row(kb, file.id)).storage_path).stat().st_size == (
                HANDBOOK.stat().st_size
            )

        # The killed process could not stop its embedded Redis (it daemonizes): the next
        # start on the data dir takes that server over and stops it when it is done.
        orphan = embedded_redis_pid(sqlite_settings.data_dir)
        assert orphan is not None and still_running([orphan], timeout=0) != []
        await connect_redis(sqlite_settings).aclose()
        assert still_running([orphan]) == []
    finally:
        if process.poll() is None:
            process.kill()
        left = embedded_redis_pid(sqlite_settings.data_dir)
        if left is not None and still_running([left], timeout=0):
            os.kill(left, signal.SIGKILL)  # a failed run leaves no server behind either


async def _wait_for_embedding(
    sessions: async_sessionmaker[AsyncSession], process: subprocess.Popen[bytes]
) -> File:
    """The file's row once the killed process is embedding it (parsed, chunked, recorded)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        async with sessions() as session:
            file = await session.scalar(select(File))
        if file is not None and IngestProgress.of(file).stage == "embedding":
            return file
        await asyncio.sleep(0.2)
    raise AssertionError("copilot ingest never reached embedding")
