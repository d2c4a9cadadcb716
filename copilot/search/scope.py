"""Who may read which chunk, carried as data (access tokens) into every index query.

The rule: a user reads their own personal files, and, within the classifications their
roles allow, company files and their own department's department files. It is written
once, here, as tokens (as Onyx's `ExternalAccess` does): at index time each chunk gets the
tokens of the people who may read it, a user's `AccessScope` is the set of tokens they
hold, and a chunk is readable when the two sets meet. Every engine stores a chunk's tokens
in one multi-valued exact-match field (`ACCESS_FIELD`) and filters with a single "any of"
clause inside the query, so results are never filtered after the fact and no engine has
its own copy of the rule. `AccessScope.allows` is the same intersection in Python.

    personal file of U                   -> user:<U>
    department file of D, classification C -> dept:<D>:<C>
    company file, classification C         -> company:<C>

Each part is percent-encoded (`quote`, nothing safe), so a `:` inside an id cannot make
two different files' tokens equal; UUIDs and the classification names read as themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote

#: The multi-valued keyword field every engine stores a chunk's tokens in.
ACCESS_FIELD = "access"


def _part(value: str) -> str:
    return quote(value, safe="")


def user_token(user_id: str) -> str:
    return f"user:{_part(user_id)}"


def department_token(department_id: str, classification: str) -> str:
    return f"dept:{_part(department_id)}:{_part(classification)}"


def company_token(classification: str) -> str:
    return f"company:{_part(classification)}"


@dataclass(frozen=True)
class ChunkAccess:
    """Who owns a chunk's file and who may read it; `tokens` is what the indexes store."""

    owner_id: str
    scope: str
    department_id: str | None
    classification: str

    @cached_property
    def tokens(self) -> frozenset[str]:
        """The tokens of everyone who may read the chunk (none for an unknown scope)."""
        if self.scope == "personal":
            return frozenset({user_token(self.owner_id)})
        if self.scope == "company":
            return frozenset({company_token(self.classification)})
        if self.scope == "department" and self.department_id is not None:
            return frozenset({department_token(self.department_id, self.classification)})
        return frozenset()


@dataclass(frozen=True)
class AccessScope:
    """What a user may read, as the tokens they hold."""

    user_id: str
    department_id: str | None
    classifications: frozenset[str]

    @cached_property
    def tokens(self) -> frozenset[str]:
        held = {user_token(self.user_id)}
        held |= {company_token(c) for c in self.classifications}
        if self.department_id is not None:
            held |= {department_token(self.department_id, c) for c in self.classifications}
        return frozenset(held)

    def sorted_tokens(self) -> list[str]:
        """The tokens in a stable order, for query filters (readable, cacheable logs)."""
        return sorted(self.tokens)

    def allows(self, chunk: ChunkAccess) -> bool:
        """The engines' filter in Python: the chunk's tokens and the user's meet."""
        return not self.tokens.isdisjoint(chunk.tokens)


def access_fields(access: ChunkAccess) -> dict[str, str | list[str] | None]:
    """What every engine stores of a chunk's access: the tokens (the only thing filtered
    on) and the four fields they came from (metadata for hits and admin pages)."""
    return {
        ACCESS_FIELD: sorted(access.tokens),
        "owner_id": access.owner_id,
        "scope": access.scope,
        "department_id": access.department_id,
        "classification": access.classification,
    }
