"""Data sources: folders (and later other kinds) whose files are kept in step with the
knowledge base by sync jobs. `sync_source` runs one sync; the catalog adds and removes."""

from copilot.knowledge.sources.catalog import (
    NewSource,
    SourceError,
    add_source,
    get_source,
    list_sources,
    remove_source,
)
from copilot.knowledge.sources.connector import SourceUnavailable, connector_for
from copilot.knowledge.sources.sync import SyncAlreadyRunning, sync_source

__all__ = [
    "NewSource",
    "SourceError",
    "SourceUnavailable",
    "SyncAlreadyRunning",
    "add_source",
    "connector_for",
    "get_source",
    "list_sources",
    "remove_source",
    "sync_source",
]
