"""Ingestion behind a chat load, for `copilot bench chat --ingest FILE`.

The files go through the app's own `IngestionQueue`, as a chat upload does: admitted, then
ingested by the queue's workers in the server's process and event loop. Each *round*
ingests every file once for a new owner (the same bytes of one owner are a duplicate, so
a round needs its own), as a personal upload. Rounds follow one another for as long as
the chat load runs, so the ingestion covers the whole measurement whatever the file's
size; `overlap` says how much of the load window really had an ingestion running.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from copilot.db.models import File
from copilot.knowledge.ingest import Ownership
from copilot.knowledge.jobs import IngestionQueue, watch

#: A new owner for a round: the same bytes of one owner would be refused as a duplicate.
NewOwner = Callable[[], Awaitable[uuid.UUID]]
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class IngestRound:
    """Every file ingested once: its chunks, and when it started and ended (epoch s)."""

    chunks: int
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def seconds_within(self, start: float, end: float) -> float:
        return max(0.0, min(self.ended, end) - max(self.started, start))


@dataclass
class IngestionUnderLoad:
    """The ingestion alone (no chat), and its rounds while the chats were asking."""

    files: list[str]
    alone: IngestRound
    rounds: list[IngestRound] = field(default_factory=list)
    load_started: float = 0.0
    load_ended: float = 0.0

    @property
    def overlap(self) -> float:
        """Share of the chat load's window during which an ingestion was running."""
        window = self.load_ended - self.load_started
        covered = sum(r.seconds_within(self.load_started, self.load_ended) for r in self.rounds)
        return min(1.0, covered / window) if window > 0 else 0.0

    @property
    def rounds_share_under_load(self) -> float:
        """Share of the rounds' ingestion time that had the chat load beside it."""
        total = sum(r.seconds for r in self.rounds)
        within = sum(r.seconds_within(self.load_started, self.load_ended) for r in self.rounds)
        return within / total if total else 0.0

    @property
    def chunks_per_second_alone(self) -> float:
        return self.alone.chunks / self.alone.seconds if self.alone.seconds else 0.0

    @property
    def chunks_per_second_under_load(self) -> float:
        seconds = sum(r.seconds for r in self.rounds)
        return sum(r.chunks for r in self.rounds) / seconds if seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "alone": {"chunks": self.alone.chunks, "seconds": round(self.alone.seconds, 2)},
            "rounds": [{"chunks": r.chunks, "seconds": round(r.seconds, 2)} for r in self.rounds],
            "load_seconds": round(self.load_ended - self.load_started, 2),
            "overlap": round(self.overlap, 3),
            "rounds_share_under_load": round(self.rounds_share_under_load, 3),
            "chunks_per_second_alone": round(self.chunks_per_second_alone, 1),
            "chunks_per_second_under_load": round(self.chunks_per_second_under_load, 1),
        }


class BackgroundIngestion:
    """Rounds of `files` through `queue`, each for an owner from `new_owner`."""

    def __init__(self, queue: IngestionQueue, files: Sequence[Path], new_owner: NewOwner) -> None:
        self.queue, self.files, self.new_owner = queue, list(files), new_owner

    async def ingest_once(self, running: asyncio.Event | None = None) -> IngestRound:
        """One round, from the first submission until every file is ready; `running` is
        set once the queue's worker has taken a file (its status is processing)."""
        ownership = Ownership(await self.new_owner())
        started = time.time()
        file_ids: list[uuid.UUID] = []
        for path in self.files:
            admitted = await self.queue.submit(path, ownership)
            if not isinstance(admitted, File):
                raise RuntimeError(f"{path.name} was not queued: {admitted.summary}")
            file_ids.append(admitted.id)

        def seen(rows: list[File]) -> None:
            if running is not None and any(f.status != "pending" for f in rows):
                running.set()

        rows = await watch(self.queue.kb, file_ids, seen, interval=POLL_SECONDS)
        ended = time.time()
        failed = [f"{f.original_name}: {f.error}" for f in rows if f.status != "ready"]
        if failed or len(rows) < len(file_ids):
            raise RuntimeError(f"the background ingestion failed: {failed or 'a file vanished'}")
        return IngestRound(sum(f.chunk_count for f in rows), started, ended)

    async def keep_ingesting(
        self, running: asyncio.Event, stop: asyncio.Event
    ) -> list[IngestRound]:
        """Rounds one after another until `stop` is set (the round then running ends
        first); `running` is set as soon as the first round's ingestion has started."""
        rounds = [await self.ingest_once(running)]
        while not stop.is_set():
            rounds.append(await self.ingest_once())
        return rounds


async def measure_under_ingestion(
    ingestion: BackgroundIngestion,
    alone: IngestRound,
    load: Callable[[], Awaitable[tuple[float, float]]],
) -> IngestionUnderLoad:
    """Run `load` (returning its window, epoch seconds) once an ingestion is running, and
    keep ingesting until it is over."""
    running, stop = asyncio.Event(), asyncio.Event()
    rounds = asyncio.create_task(ingestion.keep_ingesting(running, stop))
    try:
        waiting = asyncio.create_task(running.wait())
        await asyncio.wait({waiting, rounds}, return_when=asyncio.FIRST_COMPLETED)
        if rounds.done():  # failed before it started: say why
            waiting.cancel()
            await rounds
        load_started, load_ended = await load()
        stop.set()
        return IngestionUnderLoad(
            [p.name for p in ingestion.files], alone, await rounds, load_started, load_ended
        )
    finally:
        if not rounds.done():
            rounds.cancel()
