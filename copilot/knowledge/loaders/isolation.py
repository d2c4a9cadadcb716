"""Read an upload in a worker process that has a time and a memory limit.

The parsers are pure-Python libraries reading bytes anyone can craft: a PDF with a huge
content stream keeps pypdf busy for minutes, a cunning one makes it allocate gigabytes. In
the app process that would starve every chat; in a worker it can be stopped. Each file gets
a fresh interpreter (`copilot.knowledge.loaders.worker`): nothing a hostile file did survives
into the next one, and nothing of the app (torch's threads, the event loop, database pools)
is copied into it the way a fork would. The worker caps its own address space
(``RLIMIT_AS``) before it reads anything and is killed when the time is up. Requests and
answers cross as JSON, so the app never unpickles what a worker sends. Starting one costs
about a tenth of a second, small next to embedding the file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copilot
from copilot.knowledge.loaders import errors
from copilot.knowledge.loaders.document import LoadedDocument, Page
from copilot.knowledge.loaders.errors import TooMuchMemory, TooSlowToRead, UnreadableFile
from copilot.knowledge.loaders.load import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

WORKER_MODULE = "copilot.knowledge.loaders.worker"
SETTINGS_PREFIX = "COPILOT_"
_STDERR_LOGGED = 4000  # characters of a crashed worker's stderr kept in the log
# At most one worker per core: uploads in parallel then wait for a slot rather than
# multiply the memory limit and crowd out the app (waiting does not count as reading time).
_PARSER_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


@dataclass(frozen=True)
class ParseLimits:
    """How long one file may take to read, and how much memory its worker may map."""

    timeout_seconds: float = 120.0
    memory_mb: int = 2048


class ParserCrashed(RuntimeError):
    """The worker failed in a way no loader foresaw (a bug, a crash); the detail is for logs."""


def load_document_isolated(
    path: Path,
    *,
    filename: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: ParseLimits = ParseLimits(),
) -> LoadedDocument:
    """:func:`~copilot.knowledge.loaders.load_document` in a worker process, within ``limits``.

    Raises what load_document raises (its UnreadableFile messages are written for users),
    TooSlowToRead or TooMuchMemory when a limit is hit, and ParserCrashed for anything else.
    Blocks while the worker runs: call it from a thread in async code.
    """
    display_name = filename or path.name
    with _PARSER_SLOTS:
        return _run_worker(path, display_name, max_bytes, limits)


def _run_worker(
    path: Path, display_name: str, max_bytes: int, limits: ParseLimits
) -> LoadedDocument:
    request = json.dumps(
        {
            "path": str(path),
            "filename": display_name,
            "max_bytes": max_bytes,
            "memory_mb": limits.memory_mb,
        }
    ).encode()
    worker = subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=worker_environment(),
    )
    try:
        output, diagnostics = worker.communicate(request, timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()
        log.warning(
            "reading %r took longer than %g s; killed parser worker %d",
            display_name,
            limits.timeout_seconds,
            worker.pid,
            extra={"worker_pid": worker.pid},
        )
        raise TooSlowToRead(
            display_name,
            f"took longer than {limits.timeout_seconds:g} s to read; it may be damaged or "
            "unusually complex. Split it into smaller files or export it again, and upload "
            "those.",
        ) from None
    except BaseException:
        worker.kill()  # cancelled (the app is stopping): the worker must not outlive us
        worker.communicate()
        raise
    if diagnostics:
        log.debug("the parser worker for %r logged:\n%s", display_name, _tail(diagnostics))
    return _answer(display_name, limits, worker.returncode, output, diagnostics)


def worker_environment() -> dict[str, str]:
    """The app's environment without its settings (secrets, database and engine URLs: a
    parser needs none of them), and with this copy of copilot first on the path."""
    source = str(Path(copilot.__file__).resolve().parents[1])
    inherited = os.environ.get("PYTHONPATH", "")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (source, inherited) if p)
    return environment


def _answer(
    filename: str, limits: ParseLimits, returncode: int, output: bytes, diagnostics: bytes
) -> LoadedDocument:
    try:
        answer: dict[str, Any] = json.loads(output)
    except ValueError:
        raise ParserCrashed(
            f"the parser worker for {filename!r} exited with code {returncode} without an "
            f"answer; its stderr ends with:\n{_tail(diagnostics)}"
        ) from None
    outcome = answer.get("outcome")
    if outcome == "document":
        return LoadedDocument(
            kind=answer["kind"],
            mime_type=answer["mime_type"],
            pages=[_page(fields) for fields in answer["pages"]],
            total_pages=answer["total_pages"],
        )
    if outcome == "unreadable":
        raise _unreadable(answer)
    if outcome == "memory":
        raise TooMuchMemory(
            filename,
            f"needs more than {limits.memory_mb} MB of memory to read; split it into "
            "smaller files and upload those.",
        )
    raise ParserCrashed(
        f"reading {filename!r} failed in the parser worker:\n{answer.get('detail', answer)}"
    )


def _page(fields: dict[str, Any]) -> Page:
    rows = fields.get("line_rows")
    return Page(
        number=fields["number"],
        text=fields["text"],
        location=fields.get("location"),
        line_rows=tuple(rows) if rows is not None else None,
    )


def _unreadable(answer: dict[str, Any]) -> UnreadableFile:
    """The loader's own error again, of its own class (callers match on the class)."""
    kind = getattr(errors, str(answer.get("error")), None)
    if not (isinstance(kind, type) and issubclass(kind, UnreadableFile)):
        kind = UnreadableFile
    return kind(str(answer["filename"]), str(answer["problem"]))


def _tail(diagnostics: bytes) -> str:
    return diagnostics.decode(errors="replace")[-_STDERR_LOGGED:]
