"""The admin pages under attack (issue 9): permissions (1), stored XSS (3), CSRF (6), CSV
formulas (10), the file page's access rule (13), redaction for reviewers (14), remote
images and security headers (20) and hostile input (23).

The app runs as served, people sign in through the chat's login form; every change is
sent the way the admin's forms send it (with the form's CSRF token) unless the test is
about that token.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup

from copilot.db.models import Chat, DataSource, Feedback, File, Message, SyncJob, User
from copilot.review.analytics import Usage
from copilot.web import runtime as web_runtime
from copilot.web.admin.charts import usage_charts
from copilot.web.admin.pages import templates
from tests.review.dataset import source
from tests.security._admin_support import Admin, admin, admin_on_each_database

__all__ = ["admin", "admin_on_each_database"]  # fixtures, used by name

XSS_NAME = "x'),alert(1),('"
SCRIPT_BREAK = '</script><script>alert("pwned")</script>'
QUOTES = '" autofocus onfocus="alert(2)'
JS_LINK = "[click me](javascript:alert(3))"
BEACON = "![beacon](https://tracker.example/pixel.png?who=admin)"
HOSTILE_TEXT = f"{SCRIPT_BREAK} {QUOTES} {JS_LINK} {BEACON} <img src=x onerror=alert(4)>"
CLEARANCE_NOTE = "[redacted: cites a file above your clearance]"
ANY_NOTE = "[redacted: cites a file"


# --- helpers ----------------------------------------------------------------------------


def add_chat(
    admin: Admin,
    owner: str,
    title: str,
    question: str,
    answer: str,
    sources: list[dict[str, Any]],
    *,
    comment: str | None = None,
) -> uuid.UUID:
    """One question and its answer (thumbs down, with the comment) in a chat of `owner`."""
    owner_id = uuid.UUID(admin.principal(owner).user_id)
    when = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)

    async def add() -> uuid.UUID:
        async with web_runtime.current().sessions() as session:
            chat = Chat(user_id=owner_id, title=title, created_at=when, updated_at=when)
            session.add(chat)
            await session.flush()
            asked = Message(chat_id=chat.id, role="user", content=question, created_at=when)
            answered = Message(
                chat_id=chat.id,
                role="assistant",
                content=answer,
                sources=sources,
                model="extractive",
                created_at=when + timedelta(seconds=5),
            )
            session.add_all([asked, answered])
            await session.flush()
            session.add(
                Feedback(
                    message_id=answered.id,
                    chat_id=chat.id,
                    user_id=owner_id,
                    value=-1,
                    comment=comment,
                )
            )
            await session.commit()
            return chat.id

    chat_id: uuid.UUID = admin.run(add)
    return chat_id


def cited(file_name: str, snippet: str, file_id: uuid.UUID) -> dict[str, Any]:
    found = source(1, file_name, 1, True)
    found.update(snippet=snippet, file_id=str(file_id))
    return found


def assert_inert(html: str) -> BeautifulSoup:
    """No script can run from this page: no inline script or handler, no javascript: URL,
    no image from another host."""
    soup = BeautifulSoup(html, "lxml")
    for tag in soup.find_all(True):
        for name, value in tag.attrs.items():
            assert not name.lower().startswith("on"), f"inline handler {name} on <{tag.name}>"
            text = " ".join(value) if isinstance(value, list) else str(value)
            if name in ("href", "src", "action", "formaction", "srcset"):
                assert not text.strip().lower().startswith(("javascript:", "vbscript:")), text
    for script in soup.find_all("script"):
        assert script.get("src"), f"inline script: {script}"
        assert not (script.string or "").strip(), f"inline script text: {script}"
        assert str(script.get("src")).startswith("/"), script
    for image in soup.find_all("img"):
        assert str(image.get("src", "")).startswith("/"), f"remote image: {image}"
    return soup


def change_actions(admin: Admin) -> list[tuple[str, str | None]]:
    return [
        (action, email)
        for action, email, _ in admin.audit_actions()
        if action.startswith(("admin.user.", "admin.file."))
    ]


def roles_of(admin: Admin, who: str) -> tuple[list[str], bool]:
    async def read() -> tuple[list[str], bool]:
        async with web_runtime.current().sessions() as session:
            user = await session.get(User, uuid.UUID(admin.principal(who).user_id))
            assert user is not None
            await session.refresh(user)
            return sorted(role.name for role in user.roles), user.is_active

    result: tuple[list[str], bool] = admin.run(read)
    return result


# --- 1: permissions, and who may change whom ------------------------------------------


def test_each_admin_page_needs_its_own_permission(admin: Admin) -> None:
    """A reviewer with admin.conversations only: conversations yes, the rest named 403s."""
    client = admin.as_("reviewer")
    assert client.get("/admin/conversations").status_code == 200
    assert client.get("/admin/files").status_code == 200
    for path, permission in (
        ("/admin/analytics", "analytics.view"),
        ("/admin/users", "admin.users"),
        ("/admin/audit", "admin.users"),
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert permission in response.text, path
    bob = admin.data.bob.user_id
    for path, form, permission in (
        (f"/admin/users/{bob}/role", {"role": "Read Only"}, "admin.users"),
        (f"/admin/users/{bob}/deactivate", {}, "admin.users"),
        (f"/admin/users/{bob}/activate", {}, "admin.users"),
        (f"/admin/files/{admin.eng_guide}/reindex", {}, "documents.delete"),
        (f"/admin/files/{admin.eng_guide}/delete", {}, "documents.delete"),
    ):
        response = admin.post("reviewer", path, form)
        assert response.status_code == 403, path
        assert permission in response.text, path
    assert roles_of(admin, "bob") == (["Regular User"], True)
    assert change_actions(admin) == []


def test_a_department_admin_cannot_demote_or_deactivate_a_super_admin_of_their_department(
    admin: Admin,
) -> None:
    target = admin.data.eng_super.user_id
    demoted = admin.post("eng_admin", f"/admin/users/{target}/role", {"role": "Regular User"})
    assert demoted.status_code == 403 and "permission" in demoted.text
    deactivated = admin.post("eng_admin", f"/admin/users/{target}/deactivate")
    assert deactivated.status_code == 403
    assert roles_of(admin, "eng_super") == (["Super Admin"], True)
    # Nor someone with fewer rights but a higher clearance (secret).
    secret = admin.extra["secret_reader"].user_id
    refused = admin.post("eng_admin", f"/admin/users/{secret}/role", {"role": "Read Only"})
    assert refused.status_code == 403 and "clearance" in refused.text
    assert roles_of(admin, "secret_reader") == (["Secret Reader"], True)
    # The users page offers no controls for them either.
    page = admin.as_("eng_admin").get("/admin/users").text
    assert f"/admin/users/{target}/role" not in page
    assert f"/admin/users/{target}/deactivate" not in page
    assert f"/admin/users/{admin.data.bob.user_id}/role" in page
    assert change_actions(admin) == []
    # Within their rights it works, and is audited.
    changed = admin.post(
        "eng_admin", f"/admin/users/{admin.data.bob.user_id}/role", {"role": "Read Only"}
    )
    assert changed.status_code == 303
    assert change_actions(admin) == [("admin.user.role", "eng_admin@example.com")]


# --- the adversarial matrix: every route, every kind of actor ---------------------------

ACTORS = ("anonymous", "alice", "reader", "fin_admin", "eng_admin", "super_admin")
IN = "admin.conversations"  # what the refusal of non-reviewers names


def _get_matrix(admin: Admin) -> list[tuple[str, tuple[int, ...]]]:
    data = admin.data
    # anonymous, Regular User, Read Only, FIN admin, ENG admin, Super Admin (ADM)
    listing = (303, 403, 403, 200, 200, 200)
    return [
        ("/admin", (303, 303, 303, 303, 303, 303)),  # the redirect to conversations
        ("/admin/conversations", listing),
        ("/admin/conversations?text=hotels&feedback=negative", listing),
        (f"/admin/conversations/{data.travel}", (303, 403, 403, 404, 200, 200)),
        (f"/admin/conversations/{data.carol_chat}", (303, 403, 403, 200, 404, 200)),
        ("/admin/export.csv", listing),
        ("/admin/export.jsonl", listing),
        ("/admin/feedback", listing),
        ("/admin/analytics", listing),
        ("/admin/files", listing),
        (f"/admin/files/{admin.handbook}", listing),  # company, internal
        # An ENG department file: readable in ENG only (the search rule, also for the
        # Super Admin, whose department is ADM).
        (f"/admin/files/{admin.eng_guide}", (303, 403, 403, 404, 200, 404)),
        ("/admin/sources", listing),
        (f"/admin/files?tag=hr&source={uuid.uuid4()}", listing),
        ("/admin/users", listing),
        ("/admin/audit", listing),
    ]


def _post_matrix(admin: Admin) -> list[tuple[str, dict[str, str], tuple[int, ...]]]:
    target = admin.data.eng_super.user_id  # a Super Admin sitting in ENG
    return [
        (f"/admin/users/{target}/role", {"role": "Regular User"}, (303, 403, 403, 403, 403, 303)),
        (f"/admin/users/{target}/deactivate", {}, (303, 403, 403, 403, 403, 303)),
        (f"/admin/users/{target}/activate", {}, (303, 403, 403, 403, 403, 303)),
        (f"/admin/files/{admin.eng_guide}/reindex", {}, (303, 403, 403, 403, 303, 303)),
        (f"/admin/files/{admin.handbook}/reindex", {}, (303, 403, 403, 403, 403, 303)),
        # Tags need admin.datasources, which a Department Admin has not (syncs: in
        # tests/web/test_admin_sources.py).
        (f"/admin/files/{admin.eng_guide}/tags", {"tags": "hr"}, (303, 403, 403, 403, 403, 303)),
        (f"/admin/files/{admin.handbook}/tags", {"tags": "hr"}, (303, 403, 403, 403, 403, 303)),
        (f"/admin/files/{admin.handbook}/delete", {}, (303, 403, 403, 403, 403, 303)),
    ]


#: What a refusal names, per actor (the missing permission, or the reach).
REFUSAL_NAMES = {
    "alice": IN,
    "reader": IN,
    "fin_admin": ("reach", "another department", "admin.datasources", "no such"),
    "eng_admin": ("permission", "admin.datasources"),
}


def test_every_admin_route_for_every_kind_of_actor(admin: Admin) -> None:
    for column, actor in enumerate(ACTORS):
        who = None if actor == "anonymous" else actor
        client = admin.as_(who)
        for path, expected in _get_matrix(admin):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == expected[column], (actor, path, response.text[:200])
            if response.status_code == 303 and who is None and path != "/admin":
                # Back to the page after signing in (public/copilot.js follows `next`).
                path_only = path.split("?", 1)[0]
                assert response.headers["location"] == f"/chat/login?next={path_only}"
            if response.status_code == 403:
                names = REFUSAL_NAMES[actor]
                assert any(name in response.text for name in names), (actor, path)
        before = len(change_actions(admin))
        done = 0
        for path, form, expected in _post_matrix(admin):
            response = admin.post(who, path, form)
            assert response.status_code == expected[column], (actor, path, response.text[:300])
            if response.status_code == 403:
                names = REFUSAL_NAMES[actor]
                assert any(name in response.text for name in names), (actor, path)
            if response.status_code == 303 and who is not None:
                done += 1
        changes = change_actions(admin)[before:]
        assert len(changes) == done, (actor, changes)
        assert all(email == f"{actor}@example.com" for _, email in changes)
    assert [action for action, _ in change_actions(admin)] == [
        "admin.file.reindex",  # the ENG admin, their department's file
        "admin.user.role",
        "admin.user.deactivate",
        "admin.user.activate",
        "admin.file.reindex",
        "admin.file.reindex",
        "admin.file.tags",
        "admin.file.tags",
        "admin.file.delete",
    ]
    assert roles_of(admin, "eng_super") == (["Regular User"], True)


# --- 3 and 20: hostile strings in every admin page --------------------------------------


def test_hostile_names_and_contents_cannot_run_script_on_any_admin_page(admin: Admin) -> None:
    hostile_file = admin.add_file(
        XSS_NAME,
        "super_admin",
        scope="company",
        text=f"Company text {HOSTILE_TEXT}",
        file_id=uuid.uuid5(uuid.NAMESPACE_URL, XSS_NAME),
    )
    admin.add_file(SCRIPT_BREAK, "eng_admin", scope="department", text=HOSTILE_TEXT)

    async def hostile_person() -> None:
        from copilot import users

        async with web_runtime.current().sessions() as session:
            await users.create_user(
                session,
                f"{XSS_NAME}@evil.example",
                display_name=SCRIPT_BREAK + QUOTES,
                password=None,
                role="Regular User",
                department="ENG",
            )

    admin.run(hostile_person)

    async def hostile_source() -> None:
        async with web_runtime.current().sessions() as session:
            (await session.get_one(File, hostile_file)).tags = [SCRIPT_BREAK, QUOTES]
            source = DataSource(
                name=SCRIPT_BREAK + QUOTES,
                kind="folder",
                location=f"/srv/{XSS_NAME}",
                owner_id=uuid.UUID(admin.data.super_admin.user_id),
                scope="company",
                tags=[SCRIPT_BREAK, QUOTES],
            )
            session.add(source)
            await session.flush()
            errors = [{"path": SCRIPT_BREAK, "error": HOSTILE_TEXT}]
            session.add(SyncJob(source_id=source.id, status="partial", failed=1, errors=errors))
            await session.commit()

    admin.run(hostile_source)
    chat = add_chat(
        admin,
        "alice",
        title=SCRIPT_BREAK + XSS_NAME,
        question=HOSTILE_TEXT,
        answer=f"Here you go {HOSTILE_TEXT} [1].",
        sources=[cited(XSS_NAME, HOSTILE_TEXT, hostile_file)],
        comment=HOSTILE_TEXT,
    )
    client = admin.as_("super_admin")
    # The filters are echoed back and written to the audit log, which is shown too.
    client.get("/admin/conversations", params={"user": XSS_NAME + QUOTES})
    pages = [
        "/admin/conversations",
        f"/admin/conversations?text={SCRIPT_BREAK}",
        f"/admin/conversations/{chat}",
        "/admin/feedback",
        "/admin/analytics?start=2026-11-01&end=2026-11-30",
        "/admin/files",
        f"/admin/files/{hostile_file}",
        f"/admin/files?tag={SCRIPT_BREAK}",
        "/admin/sources",
        "/admin/users",
        f"/admin/users?search={QUOTES}",
        "/admin/audit",
        f"/admin/audit?actor={SCRIPT_BREAK}",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        soup = assert_inert(response.text)
        assert "tracker.example" not in str(soup.find_all(["img", "script", "iframe"])), path
    # The names are shown, as text.
    files_page = BeautifulSoup(client.get("/admin/files").text, "lxml")
    assert XSS_NAME in files_page.get_text()
    sources_page = BeautifulSoup(client.get("/admin/sources").text, "lxml").get_text()
    assert SCRIPT_BREAK + QUOTES in sources_page and HOSTILE_TEXT in sources_page
    users_page = BeautifulSoup(client.get("/admin/users").text, "lxml")
    assert f"{XSS_NAME}@evil.example" in users_page.get_text()
    transcript = BeautifulSoup(client.get(f"/admin/conversations/{chat}").text, "lxml")
    assert SCRIPT_BREAK in transcript.get_text() and "javascript:" not in str(
        transcript.find_all("a")
    )
    # A download's file name is the app's own, whatever the filter held.
    download = client.get("/admin/export.csv", params={"text": SCRIPT_BREAK + '"\r\nX: 1'})
    assert re.fullmatch(
        r'attachment; filename="conversations-\d{8}-\d{6}\.csv"',
        download.headers["content-disposition"],
    )
    # The confirmation dialogs read their text from data attributes (admin.js).
    forms = files_page.select("form[data-confirm]")
    assert any(XSS_NAME in str(form["data-confirm"]) for form in forms)


def test_chart_labels_reach_plotly_as_text_not_markup() -> None:
    """Plotly reads tags in labels (<a href>, <b>); a file name must stay a name."""
    link = '<a href="https://evil.example">x</a>'
    figures = usage_charts(
        Usage(
            start=date(2026, 11, 1),
            end=date(2026, 11, 30),
            days=[],
            questions=1,
            answers=1,
            errors=0,
            active_users=1,
            thumbs_up=0,
            thumbs_down=0,
            latency_p50_ms=None,
            latency_p95_ms=None,
            top_files=[(link, 3)],
            busiest_users=[],
            busiest_departments=[("<b>ENG</b>", 1)],
            unanswered=0,
        )
    )
    labels = json.loads(figures["top_files"])["data"][0]["y"]
    assert labels == ['&lt;a href="https://evil.example"&gt;x&lt;/a&gt;']
    assert json.loads(figures["departments"])["data"][0]["x"] == ["&lt;b&gt;ENG&lt;/b&gt;"]


def test_markdown_in_answers_renders_no_remote_image_and_no_script_link() -> None:
    render = templates.env.filters["markdown"]
    html = str(render(f"See {BEACON} and {JS_LINK} and ![local](/chat/public/logo.svg)"))
    soup = BeautifulSoup(html, "lxml")
    assert soup.find("img") is None
    assert "tracker.example" in soup.get_text()  # shown as text: a person can still see it
    assert all(
        not str(a.get("href", "")).lower().startswith("javascript:") for a in soup.find_all("a")
    )
    assert "<script" not in str(render("<script>alert(1)</script>"))


def test_admin_responses_carry_a_content_security_policy(admin: Admin) -> None:
    client = admin.as_("super_admin")
    for path in ("/admin/conversations", "/admin/analytics", "/admin/files/" + str(uuid.uuid4())):
        response = client.get(path)
        policy = response.headers.get("content-security-policy", "")
        directives = dict(
            (part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip()
        )
        assert directives.get("default-src") == "'self'", (path, policy)
        assert "'unsafe-inline'" not in directives.get("script-src", "'self'"), policy
        assert directives.get("img-src") == "'self' data:", policy
        assert directives.get("frame-ancestors") == "'none'", policy
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert response.headers.get("referrer-policy") == "same-origin"
    # The page's own script comes from the admin's static folder.
    script = client.get("/admin/static/admin.js")
    assert script.status_code == 200 and "data-confirm" in script.text
    refused = admin.as_("alice").get("/admin/conversations")
    assert "frame-ancestors 'none'" in refused.headers.get("content-security-policy", "")


# --- 6: CSRF ------------------------------------------------------------------------


def test_admin_changes_need_the_forms_csrf_token(admin: Admin) -> None:
    bob = admin.data.bob.user_id
    path = f"/admin/users/{bob}/role"
    client = admin.as_("super_admin")
    # No token, no Origin, no Referer (what a cross-site form post may look like).
    bare = client.post(path, data={"role": "Read Only"}, follow_redirects=False)
    assert bare.status_code == 403 and "CSRF" in bare.text
    # Same-origin headers do not replace the token.
    same_site = client.post(
        path, data={"role": "Read Only"}, headers={"origin": "http://testserver"}
    )
    assert same_site.status_code == 403
    # Another person's token.
    foreign = client.post(
        path,
        data={"role": "Read Only", "csrf_token": admin.token("eng_admin")},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    wrong = client.post(path, data={"role": "Read Only", "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert roles_of(admin, "bob") == (["Regular User"], True)
    assert change_actions(admin) == []
    # The token the users page puts in its forms works.
    page = BeautifulSoup(client.get("/admin/users").text, "lxml")
    form = page.select_one(f'form[action="/admin/users/{bob}/role"]')
    assert form is not None
    token = form.select_one('input[name="csrf_token"]')
    assert token is not None and token["value"] == admin.token("super_admin")
    done = client.post(
        path, data={"role": "Read Only", "csrf_token": str(token["value"])}, follow_redirects=False
    )
    assert done.status_code == 303
    assert roles_of(admin, "bob") == (["Read Only"], True)
    # A header works too (scripts), and a foreign Origin is still refused with a token.
    header = client.post(
        f"/admin/users/{bob}/deactivate",
        headers={"x-csrf-token": admin.token("super_admin")},
        follow_redirects=False,
    )
    assert header.status_code == 303
    evil = client.post(
        f"/admin/users/{bob}/activate",
        data={"csrf_token": admin.token("super_admin")},
        headers={"origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and "another site" in evil.text
    # Every form on the admin pages carries the token.
    for listing in ("/admin/users", "/admin/files"):
        soup = BeautifulSoup(client.get(listing).text, "lxml")
        posts = soup.select('form[method="post"]')
        assert posts, listing
        for post in posts:
            field = post.select_one('input[name="csrf_token"]')
            assert field is not None and field["value"] == admin.token("super_admin")


# --- 10: CSV formulas -------------------------------------------------------------------


def test_csv_export_neutralises_spreadsheet_formulas(admin: Admin) -> None:
    formulas = ['=HYPERLINK("http://x","y")', "@SUM(1)", "+1+1", "-2-2", "\tTAB", "\rCR"]
    chat = add_chat(
        admin, "alice", "=1+1", formulas[0], formulas[1], [], comment="-cmd|' /C calc'!A0"
    )
    for formula in formulas[2:]:
        add_chat(admin, "alice", "plain title", formula, "fine answer", [])
    client = admin.as_("super_admin")
    rows = list(csv.DictReader(io.StringIO(client.get("/admin/export.csv").text)))
    mine = [row for row in rows if row["conversation_id"] == str(chat)]
    assert [row["content"] for row in mine] == ["'" + formulas[0], "'" + formulas[1]]
    assert mine[0]["conversation_title"] == "'=1+1"
    assert mine[1]["feedback_comment"] == "'-cmd|' /C calc'!A0"
    contents = {row["content"] for row in rows}
    for formula in formulas[2:]:
        assert "'" + formula in contents
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    # JSONL is data, not a spreadsheet: kept as written.
    records = [json.loads(line) for line in client.get("/admin/export.jsonl").text.splitlines()]
    assert formulas[0] in {record["content"] for record in records}


# --- 13: the file page follows the search rule -----------------------------------------


def test_the_file_page_follows_the_admins_own_access_rule(admin: Admin) -> None:
    secret = admin.add_file(
        "launch-plan.md",
        "super_admin",
        scope="company",
        classification="secret",
        text="The launch code is PAPAYA-7.",
    )
    fin_file = admin.add_file(
        "fin-forecast.md", "fin_admin", scope="department", text="Revenue falls by MANGO-3."
    )
    # An HR department file uploaded by someone from ENG: HR's, by the file's department.
    hr_file = admin.add_file(
        "hr-salaries.md", "alice", scope="department", department="HR", text="Pay bands KIWI-9."
    )
    diary = admin.add_file("alice-diary.txt", "alice", scope="personal", text="PIN LIME-1.")
    eng = admin.as_("eng_admin")
    for file_id, word in ((secret, "PAPAYA"), (fin_file, "MANGO"), (diary, "LIME")):
        response = eng.get(f"/admin/files/{file_id}")
        assert response.status_code == 404 and word not in response.text
    listing = eng.get("/admin/files").text
    for name in ("launch-plan.md", "fin-forecast.md", "hr-salaries.md", "alice-diary.txt"):
        assert name not in listing, name
    assert "eng-guide.md" in listing and "handbook.md" in listing
    hr = admin.as_("hr_admin")
    shown = hr.get(f"/admin/files/{hr_file}")
    assert shown.status_code == 200 and "KIWI-9" in shown.text
    assert "hr-salaries.md" in hr.get("/admin/files").text
    # The Super Admin's clearance covers the secret company file.
    boss = admin.as_("super_admin")
    assert "PAPAYA-7" in boss.get(f"/admin/files/{secret}").text
    assert "launch-plan.md" in boss.get("/admin/files").text
    # A department admin may not delete a file of another department they cannot list.
    assert admin.post("eng_admin", f"/admin/files/{hr_file}/delete").status_code == 403


def test_personal_files_are_readable_only_when_the_setting_allows(admin: Admin) -> None:
    diary = admin.add_file("alice-diary.txt", "alice", scope="personal", text="PIN LIME-1.")
    runtime = web_runtime.current()
    eng = admin.as_("eng_admin")
    assert eng.get(f"/admin/files/{diary}").status_code == 404
    with pytest.MonkeyPatch.context() as patch:
        allowed = runtime.settings.model_copy(update={"admin_can_read_personal_files": True})
        patch.setattr(runtime, "settings", allowed)
        assert "LIME-1" in eng.get(f"/admin/files/{diary}").text
        assert "alice-diary.txt" in eng.get("/admin/files").text
        # Still inside the reach: the FIN admin does not see ENG's personal files.
        assert admin.as_("fin_admin").get(f"/admin/files/{diary}").status_code == 404


# --- 14: transcripts, triage and exports show a reviewer only what they may read --------


def test_reviewers_see_answers_and_snippets_only_within_their_clearance(
    admin_on_each_database: Admin,
) -> None:
    admin = admin_on_each_database
    secret = admin.add_file(
        "launch-plan.md",
        "eng_super",
        scope="company",
        classification="secret",
        text="The launch code is PAPAYA-7.",
    )
    chat = add_chat(
        admin,
        "eng_super",
        "Launch",
        "What is the launch code?",
        "The launch code is PAPAYA-7 [1].",
        [cited("launch-plan.md", "The launch code is PAPAYA-7.", secret)],
        comment="correct",
    )
    eng = admin.as_("eng_admin")
    for path in (f"/admin/conversations/{chat}", "/admin/feedback"):
        page = eng.get(path)
        assert page.status_code == 200
        assert "PAPAYA" not in page.text and "launch-plan.md" not in page.text, path
        assert CLEARANCE_NOTE in page.text, path
        assert "What is the launch code?" in page.text  # the question is the user's own
    exported = eng.get("/admin/export.csv").text
    assert "PAPAYA" not in exported and "launch-plan.md" not in exported
    # What they may read is left as it was (the seeded answers cite company files).
    assert "Hotels are reimbursed up to 180 euros" in exported and "policy.pdf" in exported
    row = next(
        r
        for r in csv.DictReader(io.StringIO(exported))
        if r["role"] == "assistant" and r["conversation_id"] == str(chat)
    )
    assert row["content"] == CLEARANCE_NOTE
    lines = eng.get("/admin/export.jsonl").text
    assert "PAPAYA" not in lines and "launch-plan.md" not in lines and CLEARANCE_NOTE in lines
    # Nor can a text search test words against the answer's hidden text.
    assert str(chat) not in eng.get("/admin/conversations?text=PAPAYA").text
    assert str(chat) not in eng.get("/admin/export.csv?text=PAPAYA").text
    assert str(chat) in eng.get("/admin/conversations?text=launch code").text  # the question
    # Nor is the secret file's name among the most cited files in analytics.
    charts = eng.get("/admin/analytics?start=2026-11-01&end=2026-11-30").text
    assert "launch-plan.md" not in charts and "policy.pdf" in charts
    # Someone cleared for it sees it all.
    boss = admin.as_("super_admin")
    assert "launch-plan.md" in boss.get("/admin/analytics?start=2026-11-01&end=2026-11-30").text
    assert "PAPAYA-7" in boss.get(f"/admin/conversations/{chat}").text
    assert "PAPAYA-7" in boss.get("/admin/export.csv").text


def test_a_transcript_does_not_show_a_personal_files_snippets(admin: Admin) -> None:
    diary = admin.add_file("alice-diary.txt", "alice", scope="personal", text="PIN LIME-1.")
    chat = add_chat(
        admin,
        "alice",
        "My PIN",
        "What is my PIN?",
        "Your PIN is LIME-1 [1].",
        [cited("alice-diary.txt", "PIN LIME-1.", diary)],
    )
    eng = admin.as_("eng_admin")
    assert eng.get(f"/admin/files/{diary}").status_code == 404
    for path in (f"/admin/conversations/{chat}", "/admin/feedback", "/admin/export.csv"):
        text = eng.get(path).text
        assert "LIME-1" not in text and ANY_NOTE in text, path


# --- 23: hostile input gives 400s naming the problem, on both databases -----------------


def test_bad_input_is_a_400_naming_it_never_a_500(admin_on_each_database: Admin) -> None:
    admin = admin_on_each_database
    client = admin.as_("super_admin")
    huge = "1" * 30
    for listing in ("conversations", "feedback", "files", "users", "audit"):
        response = client.get(f"/admin/{listing}?page={huge}")
        assert response.status_code == 400 and "page" in response.text, listing
        beyond = client.get(f"/admin/{listing}?page=9999")
        assert beyond.status_code == 200, listing  # past the end: an empty page
    for path in (
        "/admin/conversations?end=9999-12-31",
        "/admin/conversations?start=0001-01-01&end=9999-12-31",
        "/admin/analytics?end=9999-12-31",
        "/admin/analytics?start=0001-01-01&end=0001-01-05",
        "/admin/analytics?end=0001-01-01",
        "/admin/audit?start=0001-01-01&end=9999-12-31",
    ):
        assert client.get(path).status_code == 200, path
    exported = client.get("/admin/export.csv?end=9999-12-31")
    assert exported.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 13  # every message
    for path, name in (
        ("/admin/conversations?user=a%00b", "user"),
        ("/admin/conversations?text=a%00b", "text"),
        ("/admin/conversations?department=E%00", "department"),
        ("/admin/export.csv?text=%00", "text"),
        ("/admin/users?search=%00", "search"),
        ("/admin/audit?actor=%00", "actor"),
        ("/admin/audit?action=a%00", "action"),
        ("/admin/files?status=%00", "status"),
    ):
        response = client.get(path)
        assert response.status_code == 400 and name in response.text, path
    refused = admin.post(
        "super_admin", f"/admin/users/{admin.data.bob.user_id}/role", {"role": "Read\x00Only"}
    )
    assert refused.status_code in (400, 403)
