"""What a data source holds, behind one small protocol: its entries (a relative POSIX path,
a size, a modification time) and each one's bytes as a local file.

A folder (a mounted file server or share) is the only kind built; SharePoint or Google
Drive would be connectors too, chosen by `connector_for` from the source's `kind`, with
the sync (`copilot.knowledge.sources.sync`) unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from copilot.db.models import DataSource


class SourceUnavailable(RuntimeError):
    """The source cannot be listed (its folder is gone, unreadable, or empty where files
    were synced from it): the sync stops before it prunes anything, so an unmounted share
    never empties the knowledge base."""


@dataclass(frozen=True)
class Entry:
    """One file at the source, as listed."""

    path: str  # POSIX, relative to the source's root: "policies/travel.md"
    size_bytes: int
    modified_at: datetime  # UTC

    @property
    def folders(self) -> tuple[str, ...]:
        """The folders it sits in, outermost first (they become its tags)."""
        return PurePosixPath(self.path).parts[:-1]


class Connector(Protocol):
    """Lists a source and hands out its files' bytes."""

    def entries(self) -> list[Entry]:
        """Every file at the source now (raises SourceUnavailable when it cannot tell)."""
        ...

    def local_copy(self, path: str) -> AbstractContextManager[Path]:
        """The entry's bytes as a local file for as long as the context is open."""
        ...


class FolderConnector:
    """A folder: every regular file under it, except hidden ones (a name starting with a
    dot, or under such a folder) and symlinks that lead outside the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            raise SourceUnavailable(f"the folder {self.root} does not exist or is not a folder")
        root = self.root.resolve()
        found: list[Entry] = []
        try:
            for folder, subfolders, names in os.walk(root, followlinks=False):
                subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    entry = self._entry(root, Path(folder) / name)
                    if entry is not None:
                        found.append(entry)
        except OSError as error:
            raise SourceUnavailable(f"the folder {self.root} cannot be read: {error}") from error
        return found

    @staticmethod
    def _entry(root: Path, path: Path) -> Entry | None:
        target = path.resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None  # a link out of the share, a broken link, a socket or a device
        stat = target.stat()
        relative = path.relative_to(root).as_posix()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        return Entry(relative, stat.st_size, modified)

    @contextmanager
    def local_copy(self, path: str) -> Iterator[Path]:
        """The file itself: it is local already (and checked to stay inside the root)."""
        root = self.root.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"{path!r} is outside the source's folder")
        yield target


def connector_for(source: DataSource) -> Connector:
    """The connector of the source's kind."""
    if source.kind == "folder":
        return FolderConnector(Path(source.location))
    raise ValueError(f"data sources of kind {source.kind!r} are not supported (only folder)")
