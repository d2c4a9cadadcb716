"""/admin over HTTP: the authorization matrix, page content, export, changes and the audit log.

The app runs as served (FastAPI + Chainlit, the chat's own sign-in); people sign in through
the chat's login form and the admin pages read the same cookie.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from copilot.db import migrate
from copilot.db.models import AuditLog, File, User
from copilot.db.seed import seed_defaults
from copilot.knowledge import knowledge_base
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.knowledge.ingest import Ownership, ingest_file
from copilot.settings import Settings
from copilot.web import runtime as web_runtime
from copilot.web.server import create_app
from tests.review.dataset import PASSWORD, Dataset, seed_conversations

PEOPLE = ("super_admin", "eng_admin", "fin_admin", "alice")


@dataclass
class Admin:
    client: TestClient
    data: Dataset
    handbook: uuid.UUID  # a company file
    eng_guide: uuid.UUID  # an ENG department file
    cookies: dict[str, dict[str, str]]

    def as_(self, who: str | None) -> TestClient:
        self.client.cookies.clear()
        if who is not None:
            self.client.cookies.update(self.cookies[who])
        return self.client

    def audit_actions(self) -> list[tuple[str, str | None, dict[str, object]]]:
        async def read() -> list[tuple[str, str | None, dict[str, object]]]:
            async with web_runtime.current().sessions() as session:
                rows = await session.execute(
                    select(AuditLog.action, User.email, AuditLog.details)
                    .outerjoin(User, User.id == AuditLog.actor_id)
                    .order_by(AuditLog.created_at)
                )
                return [(action, email, details) for action, email, details in rows.all()]

        return self.client.portal.call(read)  # type: ignore[union-attr]


@pytest.fixture
def admin(sqlite_settings: Settings, embeddings: LocalMiniLM, tmp_path: Path) -> Iterator[Admin]:
    migrate.upgrade(sqlite_settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(knowledge_base, "create_embeddings", lambda _: embeddings)
        with TestClient(create_app(sqlite_settings)) as client:

            async def setup() -> tuple[Dataset, uuid.UUID, uuid.UUID]:
                runtime = web_runtime.current()
                async with runtime.sessions() as session:
                    await seed_defaults(session)
                    data = await seed_conversations(session, passwords=True)
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
                return data, ids[0], ids[1]

            data, handbook, eng_guide = client.portal.call(setup)  # type: ignore[union-attr]
            cookies = {}
            for who in PEOPLE:
                client.cookies.clear()
                response = client.post(
                    "/chat/login",
                    data={"username": f"{who}@example.com", "password": PASSWORD},
                )
                assert response.status_code == 200, response.text
                cookies[who] = dict(client.cookies)
            yield Admin(client, data, handbook, eng_guide, cookies)


def _pages(admin: Admin) -> list[str]:
    data = admin.data
    return [
        "/admin/conversations",
        "/admin/conversations?feedback=negative&text=hotels",
        f"/admin/conversations/{data.travel}",
        "/admin/export.csv",
        "/admin/export.jsonl?department=ENG",
        "/admin/feedback",
        "/admin/analytics?start=2026-11-01&end=2026-11-30",
        "/admin/files",
        f"/admin/files/{admin.handbook}",
        "/admin/users",
        "/admin/audit",
    ]


def _changes(admin: Admin) -> list[tuple[str, dict[str, str]]]:
    bob = admin.data.bob.user_id
    return [
        (f"/admin/users/{bob}/role", {"role": "Power User"}),
        (f"/admin/users/{bob}/deactivate", {}),
        (f"/admin/users/{bob}/activate", {}),
        (f"/admin/files/{admin.eng_guide}/reindex", {}),
        (f"/admin/files/{admin.handbook}/reindex", {}),
    ]


def test_anonymous_visitors_are_sent_to_sign_in(admin: Admin) -> None:
    client = admin.as_(None)
    for path in _pages(admin):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/chat/login", path
    for path, form in _changes(admin):
        response = client.post(path, data=form, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/chat/login"
    assert admin.audit_actions() == []


def test_a_regular_user_is_refused_everywhere(admin: Admin) -> None:
    client = admin.as_("alice")
    for path in _pages(admin):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        assert "admin.conversations" in response.text
    for path, form in _changes(admin):
        assert client.post(path, data=form, follow_redirects=False).status_code == 403, path
    assert admin.audit_actions() == []


def test_the_super_admin_sees_and_does_everything_and_each_step_is_audited(admin: Admin) -> None:
    client = admin.as_("super_admin")
    for path in _pages(admin):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200, (path, response.text[:300])
    for path, form in _changes(admin):
        response = client.post(path, data=form, follow_redirects=False)
        assert response.status_code == 303, (path, response.text[:300])
    actions = [action for action, _, _ in admin.audit_actions()]
    assert actions == [
        "admin.view.conversations",
        "admin.view.conversations",
        "admin.view.transcript",
        "admin.export",
        "admin.export",
        "admin.view.feedback",
        "admin.view.analytics",
        "admin.view.files",
        "admin.view.file",
        "admin.view.users",
        "admin.view.audit",
        "admin.user.role",
        "admin.user.deactivate",
        "admin.user.activate",
        "admin.file.reindex",
        "admin.file.reindex",
    ]
    entries = admin.audit_actions()
    assert all(email == "super_admin@example.com" for _, email, _ in entries)
    assert entries[1][2] == {"feedback": "negative", "text": "hotels"}
    assert entries[4][2] == {"format": "jsonl", "department": "ENG"}


def test_a_department_admin_of_another_department_sees_none_of_it(admin: Admin) -> None:
    data, client = admin.data, admin.as_("fin_admin")
    listing = client.get("/admin/conversations")
    assert listing.status_code == 200
    assert "Budget" in listing.text and "Hotel reimbursement" not in listing.text
    transcript = client.get(f"/admin/conversations/{data.travel}")
    assert transcript.status_code == 404 and "hotels" not in transcript.text.lower()
    exported = client.get("/admin/export.csv").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {row["user"] for row in rows} == {"carol@example.com"}
    assert "alice@example.com" not in client.get("/admin/users").text
    assert "eng-guide.md" not in client.get("/admin/files").text
    assert client.get(f"/admin/files/{admin.eng_guide}").status_code == 404
    for path, form in _changes(admin):
        assert client.post(path, data=form, follow_redirects=False).status_code == 403, path


def test_a_department_admin_manages_their_own_department(admin: Admin) -> None:
    data, client = admin.data, admin.as_("eng_admin")
    listing = client.get("/admin/conversations?feedback=negative")
    assert "Hotel reimbursement" in listing.text and "Budget" not in listing.text
    transcript = client.get(f"/admin/conversations/{data.travel}")
    assert "It is 200 euros in Paris" in transcript.text and "policy.pdf" in transcript.text
    assert "<p>Hotels are reimbursed up to 180 euros per night [1].</p>" in transcript.text
    changed = client.post(
        f"/admin/users/{data.bob.user_id}/role", data={"role": "Power User"}, follow_redirects=True
    )
    assert "bob@example.com is now Power User" in changed.text
    refused = client.post(f"/admin/users/{data.bob.user_id}/role", data={"role": "Super Admin"})
    assert refused.status_code == 403 and "may not grant" in refused.text
    assert client.post(f"/admin/files/{admin.eng_guide}/reindex").status_code == 200
    # Company files need admin.datasources, which a Department Admin does not have.
    assert client.post(f"/admin/files/{admin.handbook}/reindex").status_code == 403


def test_deactivating_ends_the_users_sessions(admin: Admin) -> None:
    data = admin.data
    alice_chat = admin.as_("alice")
    assert alice_chat.get("/chat/project/settings").status_code != 401
    admin.as_("eng_admin").post(f"/admin/users/{data.alice.user_id}/deactivate")
    after = admin.as_("alice").get("/chat/project/settings")
    assert after.status_code == 401


def test_deleting_a_company_file_removes_it(admin: Admin) -> None:
    client = admin.as_("super_admin")
    response = client.post(f"/admin/files/{admin.handbook}/delete", follow_redirects=True)
    assert "Deleted handbook.md" in response.text

    async def stored() -> File | None:
        async with web_runtime.current().sessions() as session:
            return await session.get(File, admin.handbook)

    assert client.portal.call(stored) is None  # type: ignore[union-attr]


def test_changes_from_another_site_are_ignored(admin: Admin) -> None:
    client = admin.as_("super_admin")
    response = client.post(
        f"/admin/users/{admin.data.bob.user_id}/deactivate",
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403 and "another site" in response.text


def test_analytics_page_serves_its_chart_library_itself(admin: Admin) -> None:
    client = admin.as_("super_admin")
    page = client.get("/admin/analytics?start=2026-11-01&end=2026-11-30").text
    assert 'src="/admin/vendor/plotly.min.js"' in page and "https://" not in page
    bundle = client.get("/admin/vendor/plotly.min.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
    assert "policy.pdf" in page  # the most cited file, in the table beside the chart
    bad = client.get("/admin/analytics?start=2026-12-01&end=2026-11-01")
    assert bad.status_code == 400 and "starts after it ends" in bad.text
    unknown = client.get("/admin/export.xlsx")
    assert unknown.status_code == 400 and "use csv or jsonl" in unknown.text
    wrong_day = client.get("/admin/conversations?start=yesterday")
    assert (
        wrong_day.status_code == 400
        and "start: &#39;yesterday&#39; is not a date" in wrong_day.text
    )
