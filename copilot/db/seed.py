"""Default departments, roles and permissions (from the FIS seed design, plus chat/admin ones).

Seeding is idempotent: it adds what is missing and never removes or rewrites what an
operator changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from copilot.db.models import Department, Permission, Role

DEPARTMENTS = [
    ("Human Resources", "HR"),
    ("Engineering", "ENG"),
    ("Finance", "FIN"),
    ("Legal", "LEG"),
    ("Administration", "ADM"),
]

PERMISSIONS = [
    ("documents.read", "View documents"),
    ("documents.download", "Download documents"),
    ("documents.upload", "Upload new documents"),
    ("documents.delete", "Delete documents"),
    ("search.basic", "Basic search functionality"),
    ("search.advanced", "Advanced search features"),
    ("analytics.view", "View analytics dashboards"),
    ("admin.users", "User management"),
    ("admin.system", "System configuration"),
    ("admin.datasources", "Data source management"),
    ("chat.use", "Chat with the copilot"),
    ("admin.conversations", "Review conversation logs"),
]


#: Where Copilot checks each permission (the README's permission table says it).
CHECKED_AT = {
    "documents.read": "open the original of a cited source (/files/{id})",
    "documents.download": "download an original that is not shown inline (not a PDF)",
    "documents.upload": "upload files into the chat (personal knowledge)",
    "documents.delete": "reindex or delete department files in /admin",
    "search.basic": "`copilot search --as`",
    "search.advanced": "(reserved)",
    "analytics.view": "/admin/analytics",
    "admin.users": "/admin/users (roles, deactivation) and /admin/audit",
    "admin.system": "review everyone (not only one's department); /admin/health",
    "admin.datasources": (
        "reindex or delete company files, set file tags and sync data sources in /admin"
    ),
    "chat.use": "ask questions in the chat and with `copilot ask --as`",
    "admin.conversations": (
        "enter /admin: conversations, transcripts, feedback, export, files, data sources"
    ),
}


@dataclass(frozen=True)
class RoleDefault:
    name: str
    description: str
    max_classification: str
    permissions: tuple[str, ...]


_USER = ("documents.read", "documents.download", "documents.upload", "search.basic", "chat.use")

ROLES = [
    RoleDefault(
        "Super Admin", "Full system access", "secret", tuple(name for name, _ in PERMISSIONS)
    ),
    RoleDefault(
        "Department Admin",
        "Department-level administration",
        "confidential",
        (
            *_USER,
            "documents.delete",
            "search.advanced",
            "analytics.view",
            "admin.users",
            "admin.conversations",
        ),
    ),
    RoleDefault(
        "Power User",
        "Advanced search and analytics access",
        "confidential",
        (*_USER, "search.advanced", "analytics.view"),
    ),
    RoleDefault("Regular User", "Standard document search access", "internal", _USER),
    RoleDefault(
        "Read Only", "View-only access", "internal", ("documents.read", "search.basic", "chat.use")
    ),
]


async def seed_defaults(session: AsyncSession) -> dict[str, int]:
    """Insert missing departments, permissions, roles and role grants; return what was added."""
    added = {"departments": 0, "permissions": 0, "roles": 0}
    departments = {d.code for d in (await session.scalars(select(Department))).all()}
    for name, code in DEPARTMENTS:
        if code not in departments:
            session.add(Department(name=name, code=code))
            added["departments"] += 1

    permissions = {p.name: p for p in (await session.scalars(select(Permission))).all()}
    for name, description in PERMISSIONS:
        if name not in permissions:
            resource, action = name.split(".", 1)
            permissions[name] = Permission(
                name=name, resource=resource, action=action, description=description
            )
            session.add(permissions[name])
            added["permissions"] += 1

    roles = {r.name for r in (await session.scalars(select(Role))).all()}
    for default in ROLES:
        if default.name in roles:
            continue
        session.add(
            Role(
                name=default.name,
                description=default.description,
                is_system_role=True,
                max_classification=default.max_classification,
                permissions=[permissions[p] for p in default.permissions],
            )
        )
        added["roles"] += 1
    await session.commit()
    return added


def permission_table() -> str:
    """The default roles' rights as a Markdown table (the README's security section shows it).

    Generated from ROLES and PERMISSIONS, so the documentation cannot drift from the seed.
    """
    header = ["permission", *(role.name for role in ROLES)]
    rows = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        "| reads up to | " + " | ".join(role.max_classification for role in ROLES) + " |",
    ]
    for name, _ in PERMISSIONS:
        marks = ["yes" if name in role.permissions else "" for role in ROLES]
        rows.append(f"| `{name}`: {CHECKED_AT[name]} | " + " | ".join(marks) + " |")
    return "\n".join(rows)
