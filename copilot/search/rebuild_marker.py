"""Whether a rebuild runs beside a server index: its alias, and the heartbeat it carries.

Elasticsearch and Weaviate mark a running rebuild with an alias (`<name>-rebuild`,
`<Name>_Rebuild`) to the index being built, which carries the rebuild's heartbeat (the
index's `_meta`, the collection's description), rewritten every `HEARTBEAT_SECONDS` by
the rebuilding process. While the marker is fresh, every process's writes go to the
rebuild too (each looks at most once a `LOOKUP_TTL_SECONDS`). A marker whose heartbeat is
older than `STALE_SECONDS` was left by a rebuild that was killed: writes no longer go to
it, and the next rebuild or the next start (`ensure_index`, `ensure_collection`) removes
it. The embedded engines need none of this: their rebuild lock is a file lock, which the
kernel releases with the killed process (see generations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: How stale a process's knowledge of a running rebuild may be (for its writes to reach it).
LOOKUP_TTL_SECONDS = 1.0
#: How often a running rebuild rewrites its heartbeat.
HEARTBEAT_SECONDS = 10.0
#: A marker whose heartbeat is older than this was left by a rebuild that was killed; well
#: above the heartbeat, so a slow engine never has a running rebuild taken for dead.
STALE_SECONDS = 120.0

#: The engine's lookup: the heartbeat (epoch seconds) the rebuild alias's index carries,
#: 0.0 for a marker with none, or None when there is no rebuild alias.
Lookup = Callable[[], Awaitable[float | None]]


def is_stale(heartbeat: float, now: float | None = None) -> bool:
    return (now if now is not None else time.time()) - heartbeat > STALE_SECONDS


class RebuildMarker:
    """One index's view of the rebuild beside it, looked up through `lookup` (None: this is
    the index being rebuilt, beside which nothing runs)."""

    def __init__(self, lookup: Lookup | None) -> None:
        self._lookup = lookup
        self._seen: tuple[float | None, float] | None = None  # heartbeat, monotonic when read
        self._beating: asyncio.Task[None] | None = None

    async def heartbeat(self) -> float | None:
        """The marker's heartbeat, looked up at most once a LOOKUP_TTL_SECONDS."""
        if self._lookup is None:
            return None
        seen = self._seen
        if seen is not None and time.monotonic() - seen[1] < LOOKUP_TTL_SECONDS:
            return seen[0]
        heartbeat = await self._lookup()
        self._seen = (heartbeat, time.monotonic())
        return heartbeat

    async def running(self) -> bool:
        """Whether a live rebuild runs (a stale marker's does not)."""
        heartbeat = await self.heartbeat()
        return heartbeat is not None and not is_stale(heartbeat)

    async def stale(self) -> bool:
        """Whether a marker is there that a killed rebuild left (looked up afresh)."""
        self.forget()
        heartbeat = await self.heartbeat()
        return heartbeat is not None and is_stale(heartbeat)

    def forget(self) -> None:
        """Look again at the next call (after a write to the rebuild failed, say)."""
        self._seen = None

    def knows(self, heartbeat: float | None) -> None:
        """What this process just did: began (now), or ended (None) a rebuild."""
        self._seen = (heartbeat, time.monotonic())

    def keep_beating(self, touch: Callable[[], Awaitable[None]]) -> None:
        """Call `touch` (rewrite the heartbeat) every HEARTBEAT_SECONDS until stopped."""
        self._beating = asyncio.create_task(self._beat(touch))

    async def stop_beating(self) -> None:
        task, self._beating = self._beating, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self, touch: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await touch()
            except Exception:  # the next beat may get through; STALE_SECONDS allows many
                log.warning("could not write the rebuild's heartbeat", exc_info=True)
