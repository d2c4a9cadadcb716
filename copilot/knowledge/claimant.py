"""Which process is ingesting a file: its host, pid and start time, kept with the claim.

A file's claim (status processing) and every heartbeat record the claimant in
`files.progress["claimant"]`. When the claimant ran on this host and is gone (no process
with its pid, a zombie, or a pid now reused by a process started at another time), the
file was interrupted for certain and is recovered at once; a live claimant, one on
another host, or none recorded leaves the heartbeat rule (see jobs.STALE_SECONDS).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import psutil

#: Two readings of one process's start time differ by clock ticks, never by this much.
START_TIME_TOLERANCE = 1.0


@dataclass(frozen=True)
class Claimant:
    host: str
    pid: int
    started: float  # the process's start, seconds since the epoch

    @classmethod
    def of(cls, pid: int) -> Claimant:
        """The process `pid` of this host (raises psutil.NoSuchProcess when there is none)."""
        return cls(socket.gethostname(), pid, psutil.Process(pid).create_time())

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_progress(cls, progress: dict[str, Any] | None) -> Claimant | None:
        """The claimant a row's progress records, if any (rows of older versions have none)."""
        raw = (progress or {}).get("claimant")
        if not isinstance(raw, dict):
            return None
        try:
            return cls(str(raw["host"]), int(raw["pid"]), float(raw["started"]))
        except (KeyError, TypeError, ValueError):
            return None

    def is_gone(self) -> bool:
        """True only when this host can tell the process has ended."""
        if self.host != socket.gethostname():
            return False
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            return abs(process.create_time() - self.started) > START_TIME_TOLERANCE
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:  # someone else's live process
            return False


_of_pid = cache(Claimant.of)


def this_process() -> Claimant:
    return _of_pid(os.getpid())  # by pid: a forked child is a claimant of its own


def claimed_progress() -> dict[str, Any]:
    """What a fresh claim's progress holds: its claimant (this process)."""
    return {"claimant": this_process().as_json()}
