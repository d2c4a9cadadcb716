"""Generations of an embedded index: a full rebuild writes a new folder beside the live one
and switches over only when it is complete, so search never sees a half-built index.

    data_dir/keyword-index/       the first generation (the folder installs already have)
    data_dir/keyword-2/           a later generation, live or being built
    data_dir/keyword.live.json    {"live": "keyword-2", "building": "keyword-3"}

The live generation is recorded in that pointer file, replaced atomically (`os.replace`),
rather than in the database: the search layer knows nothing of the database, the record
travels with the folders it names (a copied or restored data dir stays consistent), and
every call re-checks it with one `stat()` (the file is replaced, so its inode changes),
so another process (the web app beside `copilot reindex --all`) follows a switch at its
next query. While a rebuild runs, every write (an upload, a delete, an access change) goes
to the live generation and to the one being built, so the new one misses nothing (an
upload it refuses, of another embedding model, is left to the rebuild's catch-up pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from copilot.search.base import (
    Health,
    Hit,
    IndexedChunk,
    KeywordIndex,
    SearchIndexError,
    VectorIndex,
)
from copilot.search.scope import AccessScope, ChunkAccess

log = logging.getLogger(__name__)

I = TypeVar("I", bound=KeywordIndex | VectorIndex)  # noqa: E741

#: After a switch, how long the old folder stays for searches other processes had started.
OLD_GENERATION_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Pointer:
    live: str
    building: str | None = None
    last: int = 1  # the highest generation number made: numbers are never reused


class EmbeddedGenerations(Generic[I]):
    """An index (keyword or vector) that forwards every call to the live generation's index,
    and can build a new generation beside it (`begin_rebuild`, `switch_to`, `discard`)."""

    def __init__(
        self, root: Path, family: str, first: str, open_index: Callable[[Path], I]
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._family = family
        self._first = first  # the folder of the first generation, when there is no pointer
        self._open_index = open_index
        self._pointer_path = root / f"{family}.live.json"
        self._lock_path = root / f"{family}.rebuild.lock"
        self._seen: tuple[int, int, int] | None = None
        self._pointer = self._read_pointer()
        self._live = open_index(root / self._pointer.live)
        self._live_name = self._pointer.live
        self._building: tuple[str, I] | None = None
        self._rebuild_lock: IO[bytes] | None = None  # held while this process rebuilds
        self._sync_lock = asyncio.Lock()
        self.name: str = self._live.name

    # --- the live generation --------------------------------------------------------

    @property
    def live_generation(self) -> str:
        return self._live_name

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._pointer_path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _read_pointer(self) -> Pointer:
        self._seen = self._stamp()
        if self._seen is None:
            return Pointer(self._first)
        data = json.loads(self._pointer_path.read_text())
        return Pointer(str(data["live"]), data.get("building"), int(data.get("last", 1)))

    def _write_pointer(self, pointer: Pointer) -> None:
        staged = self._pointer_path.with_suffix(".tmp")
        with staged.open("w") as file:
            json.dump(
                {"live": pointer.live, "building": pointer.building, "last": pointer.last}, file
            )
            file.flush()
            os.fsync(file.fileno())
        os.replace(staged, self._pointer_path)
        self._pointer = pointer
        self._seen = self._stamp()

    async def _sync(self) -> None:
        """Follow a switch or a rebuild started by another process (one stat() a call)."""
        if self._stamp() == self._seen:
            return
        async with self._sync_lock:
            if self._stamp() == self._seen:
                return
            pointer = await asyncio.to_thread(self._read_pointer)
            self._pointer = pointer
            if pointer.live != self._live_name:
                old = self._live
                if self._building is not None and self._building[0] == pointer.live:
                    self._live = self._building[1]
                    self._building = None
                else:
                    self._live = await asyncio.to_thread(
                        self._open_index, self._root / pointer.live
                    )
                self._live_name = pointer.live
                await _close_quietly(old)
            building = self._building
            # Another process's rebuild ended (this process's own stays until it ends it).
            if building and building[0] != pointer.building and self._rebuild_lock is None:
                await _close_quietly(building[1])
                self._building = None
            started = pointer.building
            if started and self._building is None and (self._root / started).is_dir():
                index = await asyncio.to_thread(self._open_index, self._root / started)
                self._building = (started, index)

    async def _targets(self) -> list[I]:
        """Where a write goes: the live generation, and the one being built if any."""
        await self._sync()
        building = self._building
        return [self._live] if building is None else [self._live, building[1]]

    # --- the index protocol -----------------------------------------------------------

    async def add(self, chunks: Sequence[IndexedChunk]) -> None:
        """Into the live generation, and the one being built if it takes them: one built
        for another embedding model refuses this process's vectors, and the rebuild's
        catch-up pass indexes the file from the database before it switches."""
        live, *building = await self._targets()
        await live.add(chunks)
        for index in building:
            try:
                await index.add(chunks)
            except SearchIndexError as error:
                log.warning("left to the rebuild's catch-up pass: %s", error)

    async def delete_file(self, file_id: str) -> None:
        for index in await self._targets():
            await index.delete_file(file_id)

    async def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        for index in await self._targets():
            await index.delete_chunks(chunk_ids)

    async def update_access(self, file_id: str, access: ChunkAccess) -> None:
        for index in await self._targets():
            await index.update_access(file_id, access)

    async def clear(self) -> None:
        for index in await self._targets():
            await index.clear()

    async def search(
        self, query: Any, scope: AccessScope, k: int, tags: Sequence[str] = ()
    ) -> list[Hit]:
        await self._sync()
        return await self._live.search(query, scope, k, tags)

    async def count(self, file_id: str | None = None) -> int:
        await self._sync()
        return await self._live.count(file_id)

    async def health(self) -> Health:
        await self._sync()
        health = await self._live.health()
        return Health(health.ok, f"{health.detail} ({self._live_name})", health.latency_ms)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._sync()  # the live generation may have been switched and removed
        building, self._building = self._building, None
        if building is not None:
            await _close_quietly(building[1])
        try:
            await self._live.close()
        finally:
            self._release_rebuild_lock()

    # --- rebuilding -----------------------------------------------------------------

    async def begin_rebuild(self) -> I:
        """A new, empty generation beside the live one; from now on every write to the
        live generation (from any process) reaches it too. One rebuild at a time."""
        await self._sync()
        self._take_rebuild_lock()
        try:
            stale = self._pointer.building
            if self._building is not None:
                await _close_quietly(self._building[1])
                self._building = None
            for folder in self._generation_folders():
                if folder.name != self._live_name:  # left by a rebuild that was killed
                    if folder.name != stale:
                        log.warning("removing %s, left by an interrupted rebuild", folder)
                    await asyncio.to_thread(shutil.rmtree, folder, True)
            number = self._next_number()
            name = f"{self._family}-{number}"
            index = await asyncio.to_thread(self._open_index, self._root / name)
            self._building = (name, index)
            pointer = Pointer(self._live_name, name, number)
            await asyncio.to_thread(self._write_pointer, pointer)
        except BaseException:
            self._release_rebuild_lock()
            raise
        return index

    async def switch_to(self, rebuilt: I) -> None:
        """Make the rebuilt generation live (one atomic rename), then drop the old one."""
        name = self._own_rebuild(rebuilt)
        old, old_name = self._live, self._live_name
        await asyncio.to_thread(self._write_pointer, Pointer(name, None, self._pointer.last))
        self._live, self._live_name, self._building = rebuilt, name, None
        self._release_rebuild_lock()
        await asyncio.sleep(OLD_GENERATION_GRACE_SECONDS)
        await _close_quietly(old)
        await asyncio.to_thread(shutil.rmtree, self._root / old_name, True)

    async def discard(self, rebuilt: I) -> None:
        """Abandon a rebuild: the live generation stays, the partial one is removed."""
        name = self._own_rebuild(rebuilt)
        try:
            pointer = Pointer(self._live_name, None, self._pointer.last)
            await asyncio.to_thread(self._write_pointer, pointer)
            self._building = None
            await _close_quietly(rebuilt)
            await asyncio.to_thread(shutil.rmtree, self._root / name, True)
        finally:
            self._release_rebuild_lock()

    def _own_rebuild(self, rebuilt: I) -> str:
        building = self._building
        if building is None or building[1] is not rebuilt or self._rebuild_lock is None:
            raise SearchIndexError(self.name, "that index is not this process's rebuild")
        return building[0]

    def _generation_folders(self) -> list[Path]:
        pattern = re.compile(rf"{re.escape(self._family)}-\d+")
        return [p for p in self._root.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]

    def _next_number(self) -> int:
        numbers = [int(p.name.rsplit("-", 1)[1]) for p in self._generation_folders()]
        return max([*numbers, self._pointer.last]) + 1

    def _take_rebuild_lock(self) -> None:
        """An exclusive lock on a file: released by the kernel if the process dies."""
        handle = self._lock_path.open("ab")
        try:
            _lock(handle)
        except OSError:
            handle.close()
            raise SearchIndexError(
                self.name, "another `copilot reindex --all` is rebuilding this index"
            ) from None
        self._rebuild_lock = handle

    def _release_rebuild_lock(self) -> None:
        handle, self._rebuild_lock = self._rebuild_lock, None
        if handle is not None:
            _unlock(handle)
            handle.close()


if sys.platform == "win32":
    import msvcrt

    def _lock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle: IO[bytes]) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)


async def _close_quietly(index: KeywordIndex | VectorIndex) -> None:
    """Close a generation that is no longer used; its folder may already be gone."""
    try:
        await index.close()
    except Exception as error:
        log.info("closing an old %s generation: %s", index.name, error)
