"""/admin over HTTP: page content, export, changes and the audit log.

The authorization matrix (every route for every kind of actor) is in
tests/security/test_admin_security.py.

The app runs as served (FastAPI + Chainlit, the chat's own sign-in); people sign in through
the chat's login form and the admin pages read the same cookie.
"""

from __future__ import annotations

import csv
import io

from copilot.db.models import File
from copilot.web import runtime as web_runtime
from tests.security._admin_support import Admin, admin

__all__ = ["admin"]  # the fixture, used by name


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
        "/admin/sources",
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


def test_the_super_admin_sees_and_does_everything_and_each_step_is_audited(admin: Admin) -> None:
    client = admin.as_("super_admin")
    for path in _pages(admin):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200, (path, response.text[:300])
    for path, form in _changes(admin):
        response = admin.post("super_admin", path, form)
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
        "admin.view.sources",
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
        assert admin.post("fin_admin", path, form).status_code == 403, path


def test_a_department_admin_manages_their_own_department(admin: Admin) -> None:
    data, client = admin.data, admin.as_("eng_admin")
    listing = client.get("/admin/conversations?feedback=negative")
    assert "Hotel reimbursement" in listing.text and "Budget" not in listing.text
    transcript = client.get(f"/admin/conversations/{data.travel}")
    assert "It is 200 euros in Paris" in transcript.text and "policy.pdf" in transcript.text
    assert "<p>Hotels are reimbursed up to 180 euros per night [1].</p>" in transcript.text
    # A record stored before places existed still shows its page, as it was worded then.
    assert "<strong>policy.pdf</strong>, page 3" in transcript.text
    token = admin.token("eng_admin")
    changed = client.post(
        f"/admin/users/{data.bob.user_id}/role",
        data={"role": "Power User", "csrf_token": token},
        follow_redirects=True,
    )
    assert "bob@example.com is now Power User" in changed.text
    refused = admin.post(
        "eng_admin", f"/admin/users/{data.bob.user_id}/role", {"role": "Super Admin"}
    )
    assert refused.status_code == 403 and "may not grant" in refused.text
    assert admin.post("eng_admin", f"/admin/files/{admin.eng_guide}/reindex").status_code == 303
    # Company files need admin.datasources, which a Department Admin does not have.
    assert admin.post("eng_admin", f"/admin/files/{admin.handbook}/reindex").status_code == 403


def test_the_transcript_shows_where_in_the_file_each_source_is(admin: Admin) -> None:
    transcript = admin.as_("eng_admin").get(f"/admin/conversations/{admin.data.laptop}")
    assert transcript.status_code == 200
    assert "<strong>it-handbook.docx</strong>, 4 Equipment &gt; 4.2 Laptops" in transcript.text


def test_deactivating_ends_the_users_sessions(admin: Admin) -> None:
    data = admin.data
    alice_chat = admin.as_("alice")
    assert alice_chat.get("/chat/project/settings").status_code != 401
    assert admin.post("eng_admin", f"/admin/users/{data.alice.user_id}/deactivate").is_redirect
    after = admin.as_("alice").get("/chat/project/settings")
    assert after.status_code == 401


def test_deleting_a_company_file_removes_it(admin: Admin) -> None:
    client = admin.as_("super_admin")
    response = client.post(
        f"/admin/files/{admin.handbook}/delete",
        data={"csrf_token": admin.token("super_admin")},
        follow_redirects=True,
    )
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
