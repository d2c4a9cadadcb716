"""Questions about the assistant itself ("What can you do?", "How do I add my own files?").

The documents do not know what this copilot does, so searching them for such a question
quotes whatever research paper shares its words. These questions are answered instead from
what the asker can read and do: how many documents they reach, a few of their names, and
how to add their own. The patterns are narrow on purpose: a question about anything else,
even one that starts with "how do I", goes to the knowledge as usual.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.db.models import File
from copilot.knowledge.access import readable_by
from copilot.knowledge.loaders.errors import SUPPORTED_TYPES_HINT
from copilot.search.scope import AccessScope

UPLOAD_PERMISSION = "documents.upload"
EXAMPLE_FILES = 5


class Topic(Enum):
    CAPABILITIES = "capabilities"
    UPLOADS = "uploads"


_CAPABILITIES = re.compile(
    r"^\s*(?:what\s+(?:else\s+)?can\s+you\s+do"
    r"|what\s+(?:kinds?|sorts?|types?)\s+of\s+(?:questions|things)\s+can\s+you\s+(?:answer|do)"
    r"|what\s+(?:documents|files|knowledge)\s+(?:do|can)\s+you\s+(?:know|use|read|search|see)"
    r"|who\s+are\s+you|what\s+are\s+you|how\s+can\s+you\s+help(?:\s+me)?|help)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_CAPABILITIES_PREFIX = re.compile(
    r"^\s*what\s+(?:kinds?|sorts?|types?)\s+of\s+questions\s+can\s+you\s+answer\b", re.IGNORECASE
)
_UPLOADS = re.compile(
    r"^\s*how\s+(?:do|can|could|should)\s+i\s+(?:add|upload|attach|index)\s+"
    r"(?:(?:my|our)\s+(?:own\s+)?|a\s+|new\s+)?(?:files?|documents?|pdfs?)\b"
    r"(?:\s+(?:to|into)\s+(?:your|the)\s+(?:knowledge|index|copilot))?\s*[?.!]*\s*$",
    re.IGNORECASE,
)


def topic_of(question: str) -> Topic | None:
    """Which question about the assistant this is, if it is one."""
    if _UPLOADS.match(question):
        return Topic.UPLOADS
    if _CAPABILITIES.match(question) or _CAPABILITIES_PREFIX.match(question):
        return Topic.CAPABILITIES
    return None


@dataclass(frozen=True)
class LibrarySummary:
    """What the asker can search: every ready file they may read, and their own."""

    readable_files: int
    own_files: int
    examples: list[str]  # names of the most recently added readable files


async def files_by_scope(
    sessions: async_sessionmaker[AsyncSession], scope: AccessScope
) -> dict[str, int]:
    """Ready files the asker may read, counted per scope (company, department, personal)."""
    async with sessions() as session:
        rows = await session.execute(
            select(File.scope, func.count())
            .where(File.status == "ready", readable_by(scope))
            .group_by(File.scope)
        )
    return {name: int(count) for name, count in rows.tuples()}


def welcome_lines(counts: dict[str, int], *, generated: bool) -> list[str]:
    """The chat's first screen in a few lines: what Copilot does and what it knows."""
    how = "writes answers from" if generated else "quotes the passages of"
    lines = [f"Ask a question: Copilot {how} the documents you may read and cites each source."]
    parts = [
        f"{counts[name]} {label}"
        for name, label in [
            ("company", "company-wide"),
            ("department", "of your department"),
            ("personal", "of your own"),
        ]
        if counts.get(name)
    ]
    if parts:
        total = sum(counts.values())
        files = "1 document" if total == 1 else f"{total} documents"
        lines.append(f"It knows {files}: " + ", ".join(parts) + ".")
    else:
        lines.append("It knows no documents yet: attach a file with the paperclip to start.")
    return lines


async def summarize_library(
    sessions: async_sessionmaker[AsyncSession], scope: AccessScope
) -> LibrarySummary:
    """Counted with the indexes' access rule inside the query (`readable_by`)."""
    ready = (File.status == "ready", readable_by(scope))
    async with sessions() as session:
        readable = await session.scalar(select(func.count()).select_from(File).where(*ready))
        own = await session.scalar(
            select(func.count())
            .select_from(File)
            .where(*ready, File.scope == "personal", File.owner_id == uuid.UUID(scope.user_id))
        )
        names = (
            await session.scalars(
                select(File.original_name)
                .where(*ready)
                .order_by(File.created_at.desc())
                .limit(EXAMPLE_FILES)
            )
        ).all()
    return LibrarySummary(readable or 0, own or 0, list(names))


def answer_about(
    topic: Topic,
    library: LibrarySummary,
    *,
    permissions: frozenset[str] | None,
    generated: bool,
    max_upload_mb: int,
) -> str:
    """The answer, in plain sentences; `permissions` None means not known (the CLI)."""
    if topic is Topic.UPLOADS:
        return _uploads(library, permissions, max_upload_mb)
    how = (
        "I write each answer from the passages I find"
        if generated
        else "I answer by quoting the passages that answer your question"
    )
    lines = [
        f"I answer questions from the documents you can read and from files you upload "
        f"yourself. {how}, and cite each one [1], [2] to the file and place it comes from, "
        "so you can check it. When the documents don't answer a question, I say so instead "
        "of guessing. A follow-up question in the same chat keeps the topic of the one before.",
        "",
        _library_line(library),
    ]
    if library.readable_files:
        lines += ["", "Ask about what they contain, for example a policy, a figure or a term."]
    return "\n".join(lines)


def _library_line(library: LibrarySummary) -> str:
    if not library.readable_files:
        return (
            "There are no documents you can read yet: upload a file with the paperclip, or ask "
            "an administrator to add company knowledge."
        )
    examples = ", ".join(library.examples)
    more = library.readable_files - len(library.examples)
    files = "1 document" if library.readable_files == 1 else f"{library.readable_files} documents"
    line = f"You can search {files}: {examples}" + (f" and {more} more." if more > 0 else ".")
    if library.own_files == 1:
        line += " One of them is your own upload."
    elif library.own_files:
        line += f" {library.own_files} of them are your own uploads."
    return line


def _uploads(library: LibrarySummary, permissions: frozenset[str] | None, max_mb: int) -> str:
    if permissions is not None and UPLOAD_PERMISSION not in permissions:
        return (
            f"Your role cannot add files (that needs the {UPLOAD_PERMISSION} permission). "
            "Ask an administrator if you need to."
        )
    kinds = SUPPORTED_TYPES_HINT.removeprefix("supported types are ")
    own = f" You have {library.own_files} so far." if library.own_files else ""
    return (
        "Attach a file with the paperclip next to the message box. "
        f"I can read {kinds}, up to {max_mb} MB a file. Your files are yours alone: only you "
        "can retrieve them, and answers to your questions draw on them from then on. "
        f"Type /files to see your files or delete one.{own}"
    )
