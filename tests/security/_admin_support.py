"""The served app with the known conversations, signed-in people and a few files, for the
admin's HTTP tests (tests/web/test_admin.py and tests/security/test_admin_*.py).

People beyond the review dataset: a reviewer whose role has `admin.conversations` but none
of the other admin rights, a Secret Reader (few rights, top clearance) and an HR
Department Admin, all signed in through the chat's login form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chainlit.auth.cookie import get_token_from_cookies
from fastapi.testclient import TestClient
from sqlalchemy import select

from copilot import users
from copilot.db import migrate
from copilot.db.models import AuditLog, Chunk, File, Permission, Role, User
from copilot.db.seed import seed_defaults
from copilot.knowledge import knowledge_base
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.settings import Settings
from copilot.users import Principal
from copilot.web import runtime as web_runtime
from copilot.web.admin.csrf import csrf_token
from copilot.web.server import create_app
from tests.review.dataset import PASSWORD, Dataset, seed_conversations

#: Roles the seed does not have, so each admin permission can be missing on its own.
EXTRA_ROLES = {
    "Conversation Reviewer": ("internal", ("chat.use", "documents.read", "admin.conversations")),
    "Secret Reader": ("secret", ("chat.use", "documents.read")),
}
PEOPLE = ("super_admin", "eng_admin", "fin_admin", "alice", "reader", "eng_super")
EXTRA_PEOPLE = {
    "reviewer": ("Conversation Reviewer", "ENG"),
    "secret_reader": ("Secret Reader", "ENG"),
    "hr_admin": ("Department Admin", "HR"),
}


@dataclass
class Admin:
    client: TestClient
    data: Dataset
    handbook: uuid.UUID  # a company file
    eng_guide: uuid.UUID  # an ENG department file
    cookies: dict[str, dict[str, str]]
    extra: dict[str, Principal] = field(default_factory=dict)

    def as_(self, who: str | None) -> TestClient:
        self.client.cookies.clear()
        if who is not None:
            self.client.cookies.update(self.cookies[who])
        return self.client

    def token(self, who: str) -> str:
        """The CSRF token the admin pages put in `who`'s forms."""
        sign_in = get_token_from_cookies(self.cookies[who])
        assert sign_in
        return csrf_token(sign_in)

    def post(self, who: str | None, path: str, data: dict[str, str] | None = None) -> Any:
        """A change sent the way the admin's own forms send it (with the form's token)."""
        client = self.as_(who)
        form = dict(data or {})
        if who is not None:
            form["csrf_token"] = self.token(who)
        return client.post(path, data=form, follow_redirects=False)

    def principal(self, who: str) -> Principal:
        if who in self.extra:
            return self.extra[who]
        found: Principal = getattr(self.data, who)
        return found

    def run(self, work: Any) -> Any:
        return self.client.portal.call(work)  # type: ignore[union-attr]

    def audit_actions(self) -> list[tuple[str, str | None, dict[str, object]]]:
        """What the admin pages wrote (the fixture's own sign-ins are audited too: left out)."""

        async def read() -> list[tuple[str, str | None, dict[str, object]]]:
            async with web_runtime.current().sessions() as session:
                rows = await session.execute(
                    select(AuditLog.action, User.email, AuditLog.details)
                    .outerjoin(User, User.id == AuditLog.actor_id)
                    .where(AuditLog.action.startswith("admin."))
                    .order_by(AuditLog.created_at, AuditLog.id)
                )
                return [(action, email, details) for action, email, details in rows.all()]

        result: list[tuple[str, str | None, dict[str, object]]] = self.run(read)
        return result

    def add_file(
        self,
        name: str,
        owner: str,
        *,
        scope: str,
        classification: str = "internal",
        department: str | None = None,
        text: str = "",
        file_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """A file row (and one chunk of text) straight in the database: no index needed to
        list it, show it or cite it. `department` is a code; the owner's by default."""

        async def add() -> uuid.UUID:
            async with web_runtime.current().sessions() as session:
                user = await session.get(User, uuid.UUID(self.principal(owner).user_id))
                assert user is not None
                department_id = None
                if scope == "department":
                    department_id = (
                        (await users.get_department(session, department)).id
                        if department
                        else user.department_id
                    )
                file = File(
                    id=file_id or uuid.uuid4(),
                    owner_id=user.id,
                    original_name=name,
                    mime_type="text/plain",
                    size_bytes=max(len(text), 1),
                    sha256=uuid.uuid4().hex * 2,
                    scope=scope,
                    department_id=department_id,
                    classification=classification,
                    status="ready",
                    chunk_count=1 if text else 0,
                )
                session.add(file)
                if text:
                    session.add(Chunk(file=file, ordinal=0, text=text, page=None))
                await session.commit()
                return file.id

        added: uuid.UUID = self.run(add)
        return added


def _cookie_of(client: TestClient, email: str) -> dict[str, str]:
    client.cookies.clear()
    response = client.post("/chat/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return dict(client.cookies)


def running_admin(settings: Settings, embeddings: LocalMiniLM, tmp_path: Path) -> Iterator[Admin]:
    """The app for `settings`, seeded, with everyone signed in (a generator for fixtures)."""
    migrate.upgrade(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knowledge_base, "create_embeddings", lambda _: embeddings)
        with TestClient(create_app(settings)) as client:

            async def setup() -> tuple[Dataset, uuid.UUID, uuid.UUID, dict[str, Principal]]:
                runtime = web_runtime.current()
                async with runtime.sessions() as session:
                    await seed_defaults(session)
                    data = await seed_conversations(session, passwords=True)
                    permissions = {p.name: p for p in (await session.scalars(select(Permission)))}
                    for role_name, (clearance, granted) in EXTRA_ROLES.items():
                        session.add(
                            Role(
                                name=role_name,
                                max_classification=clearance,
                                permissions=[permissions[name] for name in granted],
                            )
                        )
                    await session.commit()
                    extra = {}
                    for name, (role, department) in EXTRA_PEOPLE.items():
                        user = await users.create_user(
                            session,
                            f"{name}@example.com",
                            display_name=name.replace("_", " ").title(),
                            password=PASSWORD,
                            role=role,
                            department=department,
                        )
                        extra[name] = users.principal_of(user)
                ids = []
                for name, owner, scope in (
                    ("handbook.md", data.super_admin, "company"),
                    ("eng-guide.md", data.eng_admin, "department"),
                ):
                    path = tmp_path / name
                    path.write_text(f"# {name}\n\nVisitors park in lot B behind the building.\n")
                    department = (
                        uuid.UUID(owner.department_id)
                        if scope == "department" and owner.department_id
                        else None
                    )
                    result = await ingest_file(
                        runtime.kb,
                        path,
                        Ownership(uuid.UUID(owner.user_id), scope=scope, department_id=department),  # type: ignore[arg-type]
                    )
                    assert result.outcome == "indexed", result.summary
                    ids.append(uuid.UUID(result.file_id))
                return data, ids[0], ids[1], extra

            data, handbook, eng_guide, extra = client.portal.call(setup)  # type: ignore[union-attr]
            cookies = {
                who: _cookie_of(client, f"{who}@example.com") for who in (*PEOPLE, *EXTRA_PEOPLE)
            }
            yield Admin(client, data, handbook, eng_guide, cookies, extra)


@pytest.fixture
def admin(sqlite_settings: Settings, embeddings: LocalMiniLM, tmp_path: Path) -> Iterator[Admin]:
    yield from running_admin(sqlite_settings, embeddings, tmp_path)


@pytest.fixture
def admin_on_each_database(
    database_settings: Settings, embeddings: LocalMiniLM, tmp_path: Path
) -> Iterator[Admin]:
    """The same app once on SQLite and once on PostgreSQL."""
    yield from running_admin(database_settings, embeddings, tmp_path)
