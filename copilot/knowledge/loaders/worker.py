"""The parser worker: ``python -m copilot.knowledge.loaders.worker`` reads one file.

Started by :mod:`copilot.knowledge.loaders.isolation`, one process per file. It reads a
JSON request on stdin, caps its own memory before anything else, loads the file and writes
one JSON answer to stdout. Whatever the libraries print goes to stderr instead, so nothing
can corrupt the answer.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

#: Log records a worker writes at most: a crafted file can make a library warn per object,
#: and the app holds the worker's stderr in memory.
MAX_LOG_RECORDS = 200

try:
    import resource
except ImportError:  # Windows: no rlimits; the parent's time limit still holds
    resource = None  # type: ignore[assignment]


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    answer_channel = _private_stdout()
    logging.basicConfig(level=logging.WARNING, handlers=[_BoundedStderr(MAX_LOG_RECORDS)])
    try:
        _limit_memory(int(request["memory_mb"]))
        answer = _load(request)
    except MemoryError:
        answer = {"outcome": "memory"}
    try:
        encoded = json.dumps(answer).encode()
    except MemoryError:
        encoded = b'{"outcome": "memory"}'
    answer_channel.write(encoded)
    answer_channel.flush()


def _load(request: dict[str, Any]) -> dict[str, Any]:
    from copilot.knowledge.loaders.errors import UnreadableFile
    from copilot.knowledge.loaders.load import load_document

    try:
        document = load_document(
            Path(request["path"]), filename=request["filename"], max_bytes=request["max_bytes"]
        )
    except UnreadableFile as error:
        if isinstance(error.__cause__, MemoryError):  # a loader that caught everything
            return {"outcome": "memory"}
        return {
            "outcome": "unreadable",
            "error": type(error).__name__,
            "filename": error.filename,
            "problem": error.problem,
        }
    except MemoryError:
        raise
    except Exception:
        return {"outcome": "crashed", "detail": traceback.format_exc()}
    return {
        "outcome": "document",
        "kind": document.kind,
        "mime_type": document.mime_type,
        "pages": [asdict(page) for page in document.pages],
        "total_pages": document.total_pages,
    }


def _private_stdout() -> BinaryIO:
    """The real stdout for the answer; file descriptor 1 (print, C libraries) -> stderr."""
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


class _BoundedStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the first ``limit`` records to stderr, then only says that it stopped."""

    def __init__(self, limit: int) -> None:
        super().__init__(sys.stderr)
        self.remaining = limit

    def emit(self, record: logging.LogRecord) -> None:
        self.remaining -= 1
        if self.remaining >= 0:
            super().emit(record)
        elif self.remaining == -1:
            self.stream.write(f"(further log records dropped after {MAX_LOG_RECORDS})\n")


def _limit_memory(memory_mb: int) -> None:
    if resource is None or memory_mb <= 0:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    main()
