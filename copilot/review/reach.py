"""Whose conversations, files and records a reviewer may see.

Reviewing needs `admin.conversations`. A reviewer who may also configure the system
(`admin.system`, the Super Admin) sees everyone; any other reviewer (a Department Admin)
sees the users of their own department only, and nobody if they have no department.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, true

from copilot.users import Principal

REVIEW_PERMISSION = "admin.conversations"
EVERYONE_PERMISSION = "admin.system"


@dataclass(frozen=True)
class Reach:
    everyone: bool
    department_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal) -> Reach | None:
        """The reviewer's reach, or None when they may not review at all."""
        if not principal.can(REVIEW_PERMISSION):
            return None
        if principal.can(EVERYONE_PERMISSION):
            return cls(everyone=True)
        department = uuid.UUID(principal.department_id) if principal.department_id else None
        return cls(everyone=False, department_id=department)

    def covers(self, department_column: Any) -> ColumnElement[bool]:
        """A condition on a user's (or file's) department column: true inside the reach."""
        if self.everyone:
            return true()
        if self.department_id is None:
            return false()
        return department_column == self.department_id

    def includes(self, department_id: uuid.UUID | None) -> bool:
        """The same rule in Python, for one row already loaded."""
        return self.everyone or (
            self.department_id is not None and department_id == self.department_id
        )
