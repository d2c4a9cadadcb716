"""The audit log: every admin view, export and change is written here, and can be reviewed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import AuditLog, User
from copilot.review.conversations import before_end_of, day_start, escape_like
from copilot.review.reach import Reach
from copilot.users import Principal

AUDIT_PAGE_SIZE = 50


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Write one entry (who, what, on what, with which filters, from where) and commit."""
    session.add(
        AuditLog(
            actor_id=uuid.UUID(actor.user_id),
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details or {},
            ip=ip,
        )
    )
    await session.commit()


#: Account events, written by the sign-in routes and logout.
SIGN_IN, SIGN_IN_REFUSED, SIGN_OUT = "auth.sign_in", "auth.sign_in_refused", "auth.sign_out"


async def record_account_event(
    session: AsyncSession,
    action: str,
    *,
    email: str,
    ip: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """A sign-in, a refused sign-in or a sign-out; the actor is the account the email names
    (so a department's admins see attempts on their people), or none for unknown emails.

    The email is what the client typed: cut short and without NULs (PostgreSQL refuses them).
    """
    typed = email.replace("\x00", "")[:255]
    actor_id = await session.scalar(select(User.id).where(User.email == typed.strip().lower()))
    session.add(
        AuditLog(
            actor_id=actor_id,
            action=action,
            resource_type="user",
            resource_id=str(actor_id) if actor_id else None,
            details={"email": typed, **(details or {})},
            ip=ip[:45] if ip else None,
        )
    )
    await session.commit()


@dataclass
class AuditEntry:
    created_at: datetime
    actor: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    details: dict[str, Any]
    ip: str | None


async def list_entries(
    session: AsyncSession,
    reach: Reach,
    *,
    actor: str = "",
    action: str = "",
    start: date | None = None,
    end: date | None = None,
    page: int = 1,
    page_size: int = AUDIT_PAGE_SIZE,
) -> tuple[list[AuditEntry], bool]:
    """Entries newest first; a department reviewer sees those of their department's people."""
    query = (
        select(AuditLog, User.email)
        .outerjoin(User, User.id == AuditLog.actor_id)
        .where(reach.covers(User.department_id))
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    )
    if actor:
        query = query.where(User.email.ilike(f"%{escape_like(actor)}%", escape="\\"))
    if action:
        query = query.where(AuditLog.action.startswith(action, autoescape=True))
    if start:
        query = query.where(AuditLog.created_at >= day_start(start))
    if end:
        query = query.where(before_end_of(AuditLog.created_at, end))
    rows = (await session.execute(query.offset((page - 1) * page_size).limit(page_size + 1))).all()
    entries = [
        AuditEntry(
            entry.created_at,
            email,
            entry.action,
            entry.resource_type,
            entry.resource_id,
            entry.details or {},
            entry.ip,
        )
        for entry, email in rows[:page_size]
    ]
    return entries, len(rows) > page_size
