"""Users as an admin manages them, inside the admin's reach.

Changes are guarded here, not in the page: an admin may only touch people in their reach
whose rights (permissions) they hold themselves and whose clearance is not above their own,
may only hand out roles whose rights they hold, and may not lock themselves out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import CLASSIFICATIONS, Department, Role, User
from copilot.review.conversations import escape_like
from copilot.review.reach import Reach
from copilot.users import Principal, principal_of

LIST_PAGE_SIZE = 50


class NotAllowed(PermissionError):
    """The change is outside the admin's rights; the message says why."""


@dataclass
class PersonRow:
    id: uuid.UUID
    email: str
    name: str
    department: str | None
    roles: list[str]
    is_active: bool
    last_login_at: datetime | None
    changeable: bool = False  # the listing admin may change their role or deactivate them


async def list_people(
    session: AsyncSession, reach: Reach, admin: Principal, search: str = "", page: int = 1
) -> tuple[list[PersonRow], bool]:
    query = (
        select(User)
        .outerjoin(Department, Department.id == User.department_id)
        .where(reach.covers(User.department_id))
        .order_by(User.email)
        .offset((page - 1) * LIST_PAGE_SIZE)
        .limit(LIST_PAGE_SIZE + 1)
    )
    if search:
        pattern = f"%{escape_like(search)}%"
        query = query.where(
            or_(
                User.email.ilike(pattern, escape="\\"),
                User.display_name.ilike(pattern, escape="\\"),
            )
        )
    found = list((await session.scalars(query)).all())
    rows = [
        PersonRow(
            user.id,
            user.email,
            user.display_name,
            user.department.code if user.department else None,
            sorted(role.name for role in user.roles),
            user.is_active,
            user.last_login_at,
            changeable=_why_not_changeable(user, admin) is None,
        )
        for user in found[:LIST_PAGE_SIZE]
    ]
    return rows, len(found) > LIST_PAGE_SIZE


async def assignable_roles(session: AsyncSession, admin: Principal) -> list[str]:
    """Roles whose every permission the admin holds: nobody can grant more than they have."""
    roles = (await session.scalars(select(Role).order_by(Role.name))).all()
    return [
        role.name
        for role in roles
        if {permission.name for permission in role.permissions} <= admin.permissions
    ]


async def _person_in_reach(
    session: AsyncSession, reach: Reach, admin: Principal, user_id: uuid.UUID
) -> User:
    user = await session.get(User, user_id)
    if user is None or not reach.includes(user.department_id):
        raise NotAllowed("no such user in your reach")
    if reason := _why_not_changeable(user, admin):
        raise NotAllowed(reason)
    return user


def _why_not_changeable(user: User, admin: Principal) -> str | None:
    """Nobody changes someone with more rights or a higher clearance than their own."""
    if str(user.id) == admin.user_id:
        return "you cannot change your own account here"
    target = principal_of(user)
    if missing := sorted(target.permissions - admin.permissions):
        return (
            f"{user.email} holds rights you do not: changing them needs the "
            f"{', '.join(missing)} permission{'s' if len(missing) > 1 else ''}"
        )
    if not target.classifications <= admin.classifications:
        top = max(target.classifications, key=CLASSIFICATIONS.index)
        return f"{user.email} may read {top} files, above your clearance"
    return None


async def change_role(
    session: AsyncSession, reach: Reach, admin: Principal, user_id: uuid.UUID, role_name: str
) -> User:
    user = await _person_in_reach(session, reach, admin, user_id)
    if role_name not in await assignable_roles(session, admin):
        raise NotAllowed(f"you may not grant the role '{role_name}'")
    role = (await session.scalars(select(Role).where(Role.name == role_name))).one()
    user.roles = [role]
    await session.commit()
    return user


async def set_active(
    session: AsyncSession, reach: Reach, admin: Principal, user_id: uuid.UUID, active: bool
) -> User:
    """Deactivate or reactivate; the caller ends a deactivated user's sessions."""
    user = await _person_in_reach(session, reach, admin, user_id)
    user.is_active = active
    await session.commit()
    return user
