"""Who may read which chunk, carried as data into every index query.

A chunk is readable by a user when it belongs to one of their own personal files, or when
its classification is one their roles may read and it is either company knowledge or
department knowledge of their own department. Every engine turns an `AccessScope` into its
own query filter (an Elasticsearch bool filter, a Weaviate filter, an SQL WHERE clause):
results are never filtered after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccessScope:
    user_id: str
    department_id: str | None
    classifications: frozenset[str]

    def allows(self, chunk: ChunkAccess) -> bool:
        """The same rule in Python, for tests and for checking engine filters against."""
        if chunk.scope == "personal":
            return chunk.owner_id == self.user_id
        if chunk.classification not in self.classifications:
            return False
        if chunk.scope == "company":
            return True
        return (
            chunk.scope == "department"
            and self.department_id is not None
            and chunk.department_id == self.department_id
        )


@dataclass(frozen=True)
class ChunkAccess:
    """The access fields every indexed chunk carries."""

    owner_id: str
    scope: str
    department_id: str | None
    classification: str
