"""Accounts: creating, finding and authenticating users, and what their roles allow.

Passwords are hashed with Argon2id (argon2-cffi), the winner of the Password Hashing
Competition and OWASP's first recommendation.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from copilot.db.models import CLASSIFICATIONS, Department, Role, User
from copilot.db.types import utcnow
from copilot.search.scope import AccessScope

_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user-caused problem with an account command; the message says what to fix."""


@dataclass(frozen=True)
class Principal:
    """A signed-in user as the rest of the app sees them: identity, department, rights."""

    user_id: str
    email: str
    display_name: str
    department_id: str | None
    department_code: str | None
    roles: frozenset[str]
    permissions: frozenset[str]
    classifications: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def scope(self) -> AccessScope:
        return AccessScope(self.user_id, self.department_id, self.classifications)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def readable_classifications(roles: list[Role]) -> frozenset[str]:
    """Every classification up to the most sensitive one any of the roles may read."""
    if not roles:
        return frozenset()
    top = max(CLASSIFICATIONS.index(role.max_classification) for role in roles)
    return frozenset(CLASSIFICATIONS[: top + 1])


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=str(user.id),
        email=user.email,
        display_name=user.display_name,
        department_id=str(user.department_id) if user.department_id else None,
        department_code=user.department.code if user.department else None,
        roles=frozenset(role.name for role in user.roles),
        permissions=frozenset(p.name for role in user.roles for p in role.permissions),
        classifications=readable_classifications(user.roles),
    )


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain:
        raise AccountError(f"'{email}' is not an email address")
    return email


async def get_user(session: AsyncSession, email: str) -> User | None:
    """The account with its department, roles and permissions in one query.

    Every chat message and admin request looks its user up; the relationships' own
    selectin loading would cost four queries.
    """
    found = await session.scalars(
        select(User)
        .where(User.email == normalize_email(email))
        .options(
            joinedload(User.department),
            joinedload(User.roles).joinedload(Role.permissions),
        )
    )
    return found.unique().one_or_none()


async def require_user(session: AsyncSession, email: str) -> User:
    user = await get_user(session, email)
    if user is None:
        raise AccountError(f"no user with email {email}")
    return user


async def get_role(session: AsyncSession, name: str) -> Role:
    role = await session.scalar(select(Role).where(func.lower(Role.name) == name.lower()))
    if role is None:
        names = ", ".join((await session.scalars(select(Role.name).order_by(Role.name))).all())
        raise AccountError(
            f"no role named '{name}' (roles: {names or 'none; run copilot db seed'})"
        )
    return role


async def get_department(session: AsyncSession, code: str) -> Department:
    department = await session.scalar(
        select(Department).where(func.upper(Department.code) == code.upper())
    )
    if department is None:
        codes = ", ".join(
            (await session.scalars(select(Department.code).order_by(Department.code))).all()
        )
        raise AccountError(f"no department with code '{code}' (departments: {codes or 'none'})")
    return department


async def create_user(
    session: AsyncSession,
    email: str,
    *,
    display_name: str,
    password: str | None,
    role: str,
    department: str | None = None,
) -> User:
    email = normalize_email(email)
    if await get_user(session, email) is not None:
        raise AccountError(f"a user with email {email} already exists")
    if password is not None and len(password) < 8:
        raise AccountError("the password must have at least 8 characters")
    user = User(
        id=uuid.uuid4(),
        email=email,
        display_name=display_name or email.split("@")[0],
        password_hash=hash_password(password) if password else None,
        department=await get_department(session, department) if department else None,
        roles=[await get_role(session, role)],
    )
    session.add(user)
    await session.commit()
    return user


async def set_role(session: AsyncSession, email: str, role: str) -> User:
    """Replace the user's roles with this one."""
    user = await require_user(session, email)
    user.roles = [await get_role(session, role)]
    await session.commit()
    return user


async def deactivate(session: AsyncSession, email: str) -> User:
    user = await require_user(session, email)
    user.is_active = False
    await session.commit()
    return user


@functools.cache
def dummy_password_hash() -> str:
    """A hash no password matches, checked for unknown, inactive and password-less accounts
    so that they take as long to refuse as a wrong password (no account enumeration)."""
    return hash_password(secrets.token_urlsafe(32))


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The active user with this email and password, with last_login_at updated; else None.

    Every refusal costs one Argon2 check, so timing does not tell which accounts exist.
    """
    try:
        user = await get_user(session, email)
    except AccountError:
        user = None
    usable = user is not None and user.is_active and bool(user.password_hash)
    password_hash = user.password_hash if usable and user is not None else None
    if password_hash is None:
        password_hash = await asyncio.to_thread(dummy_password_hash)
    # Argon2 is deliberately slow (~0.2 s of CPU): keep it off the event loop.
    matches = await asyncio.to_thread(verify_password, password_hash, password)
    if not (usable and matches) or user is None:
        return None
    user.last_login_at = utcnow()
    await session.commit()
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.email))).all())
