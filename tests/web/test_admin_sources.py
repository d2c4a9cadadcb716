"""/admin/sources (data sources and their sync jobs, "Sync now"), and what the file pages
show of sources, versions and tags, over HTTP against the served app (real engines).

Sources, jobs and versions are written straight into the database: the sync itself is
tested in tests/knowledge/; here the pages show what the rows say, and who may act.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import delete, select

from copilot import users
from copilot.db.models import DataSource, File, FileVersion, SyncJob
from copilot.web import runtime as web_runtime
from tests.security._admin_support import Admin, admin, admin_on_each_database

__all__ = ["admin", "admin_on_each_database"]  # fixtures, used by name

STARTED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
SYNC_MODULE_MISSING = importlib.util.find_spec("copilot.knowledge.sources") is None


def add_source(
    admin: Admin,
    name: str,
    location: str,
    *,
    scope: str = "company",
    department: str | None = None,
    classification: str = "internal",
    tags: tuple[str, ...] = (),
    jobs: tuple[dict[str, object], ...] = (),
) -> uuid.UUID:
    """A source row owned by the Super Admin, with `jobs` (oldest first)."""

    async def add() -> uuid.UUID:
        async with web_runtime.current().sessions() as session:
            department_id = (
                (await users.get_department(session, department)).id if department else None
            )
            source = DataSource(
                name=name,
                kind="folder",
                location=location,
                owner_id=uuid.UUID(admin.data.super_admin.user_id),
                scope=scope,
                department_id=department_id,
                classification=classification,
                tags=list(tags),
                last_synced_at=STARTED + timedelta(minutes=len(jobs)) if jobs else None,
            )
            session.add(source)
            await session.flush()
            for number, job in enumerate(jobs):
                session.add(
                    SyncJob(
                        source_id=source.id,
                        started_at=STARTED + timedelta(minutes=number),
                        **job,
                    )
                )
            await session.commit()
            return source.id

    added: uuid.UUID = admin.run(add)
    return added


def attach_to_source(
    admin: Admin, file_id: uuid.UUID, source_id: uuid.UUID, path: str, tags: list[str]
) -> None:
    async def attach() -> None:
        async with web_runtime.current().sessions() as session:
            file = await session.get_one(File, file_id)
            file.source_id, file.source_path, file.tags = source_id, path, tags
            await session.commit()

    admin.run(attach)


def jobs_of(admin: Admin, source_id: uuid.UUID) -> list[SyncJob]:
    async def read() -> list[SyncJob]:
        async with web_runtime.current().sessions() as session:
            found = await session.scalars(
                select(SyncJob).where(SyncJob.source_id == source_id).order_by(SyncJob.started_at)
            )
            return list(found.all())

    result: list[SyncJob] = admin.run(read)
    return result


def sync_actions(admin: Admin) -> list[str | None]:
    return [email for action, email, _ in admin.audit_actions() if action == "admin.source.sync"]


FINISHED = {"finished_at": STARTED + timedelta(seconds=40)}


def test_the_sources_page_shows_each_source_with_its_last_jobs(admin: Admin) -> None:
    handbook = add_source(
        admin,
        "Company share",
        "/srv/share/company",
        tags=("policies",),
        jobs=(
            {"status": "succeeded", "trigger": "cli", "full": True, "added": 12, **FINISHED},
            {
                "status": "partial",
                "trigger": "schedule",
                "added": 1,
                "updated": 2,
                "deleted": 3,
                "unchanged": 9,
                "failed": 1,
                "errors": [{"path": "scans/locked.pdf", "error": "is password-protected"}],
                **FINISHED,
            },
        ),
    )
    attach_to_source(admin, admin.handbook, handbook, "handbook.md", ["policies"])
    add_source(admin, "ENG wiki", "/srv/share/eng", scope="department", department="ENG")
    add_source(
        admin,
        "FIN ledgers",
        "/srv/share/fin",
        scope="department",
        department="FIN",
        jobs=({"status": "running", "trigger": "admin"},),
    )
    add_source(admin, "Board papers", "/srv/share/board", classification="secret")

    page = admin.as_("super_admin").get("/admin/sources")
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "lxml")
    assert soup.select_one('nav a[href="/admin/sources"][aria-current="page"]') is not None
    rows = {
        row.select_one('td[data-label="Source"]').get_text(strip=True): row  # type: ignore[union-attr]
        for row in soup.select("table.stack")[0].select("tbody tr")
    }
    assert list(rows) == ["Board papers", "Company share", "ENG wiki", "FIN ledgers"]
    company = {
        cell["data-label"]: cell.get_text(" ", strip=True) for cell in rows["Company share"]("td")
    }
    assert company["Kind"] == "folder" and company["Location"] == "/srv/share/company"
    assert company["Scope"] == "company" and company["Classification"] == "internal"
    assert company["Tags"] == "policies" and company["Files"] == "1"
    assert company["Last sync"] == "2026-11-20 08:02" and company["Actions"] == "Sync now"
    assert "(ENG)" in rows["ENG wiki"].get_text() and "never" in rows["ENG wiki"].get_text()
    # A running job: no second start offered.
    assert rows["FIN ledgers"].select_one("form") is None
    assert "syncing" in rows["FIN ledgers"].get_text()

    jobs = soup.select_one(f"#jobs-{handbook}")
    assert jobs is not None
    listed = [
        [cell.get_text(" ", strip=True) for cell in row("td")] for row in jobs.select("tbody tr")
    ]
    # Newest first, each count in its column, the failed file's error below its job.
    assert listed[0] == [
        "partial",
        "2026-11-20 08:01",
        "2026-11-20 08:00",
        "schedule",
        "1",
        "2",
        "3",
        "9",
        "1",
    ]
    assert listed[1] == ["scans/locked.pdf : is password-protected"]
    assert listed[2][:4] == ["succeeded", "2026-11-20 08:00", "2026-11-20 08:00", "cli (full)"]
    assert listed[2][4] == "12"
    assert [e for action, e, _ in admin.audit_actions() if action == "admin.view.sources"] == [
        "super_admin@example.com"
    ]


def test_a_department_admin_sees_company_and_own_sources_read_only(admin: Admin) -> None:
    add_source(admin, "Company share", "/srv/company")
    add_source(admin, "ENG wiki", "/srv/eng", scope="department", department="ENG")
    add_source(admin, "FIN ledgers", "/srv/fin", scope="department", department="FIN")
    add_source(admin, "Board papers", "/srv/board", classification="secret")
    page = admin.as_("eng_admin").get("/admin/sources")
    assert page.status_code == 200
    assert "Company share" in page.text and "ENG wiki" in page.text
    assert "FIN ledgers" not in page.text and "/srv/fin" not in page.text
    assert "Board papers" not in page.text  # above a Department Admin's clearance
    soup = BeautifulSoup(page.text, "lxml")
    assert soup.select('form[method="post"]') == []
    assert "needs the admin.datasources permission" in page.text
    # Not a reviewer at all: refused, as every admin page is.
    assert admin.as_("alice").get("/admin/sources").status_code == 403


def test_sync_now_needs_admin_datasources_the_forms_token_and_a_source_in_reach(
    admin: Admin,
) -> None:
    source = add_source(admin, "ENG wiki", "/srv/eng", scope="department", department="ENG")
    path = f"/admin/sources/{source}/sync"
    for who in ("eng_admin", "reviewer", "fin_admin"):
        refused = admin.post(who, path)
        assert refused.status_code == 403, who
        assert "admin.datasources" in refused.text, who
    assert admin.post("alice", path).status_code == 403
    anonymous = admin.post(None, path)
    assert anonymous.status_code == 303 and "/chat/login" in anonymous.headers["location"]
    client = admin.as_("super_admin")
    bare = client.post(path, follow_redirects=False)
    assert bare.status_code == 403 and "CSRF" in bare.text
    foreign = client.post(path, data={"csrf_token": admin.token("eng_admin")})
    assert foreign.status_code == 403
    evil = client.post(
        path,
        data={"csrf_token": admin.token("super_admin")},
        headers={"origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and "another site" in evil.text
    unknown = admin.post("super_admin", f"/admin/sources/{uuid.uuid4()}/sync")
    assert unknown.status_code == 403 and "no such data source" in unknown.text
    assert jobs_of(admin, source) == [] and sync_actions(admin) == []
    # The page's own form carries the token.
    soup = BeautifulSoup(client.get("/admin/sources").text, "lxml")
    form = soup.select_one(f'form[action="{path}"]')
    assert form is not None
    field = form.select_one('input[name="csrf_token"]')
    assert field is not None and field["value"] == admin.token("super_admin")


def test_sync_now_on_a_running_source_starts_no_second_sync(admin: Admin) -> None:
    source = add_source(
        admin, "Company share", "/srv/company", jobs=({"status": "running", "trigger": "cli"},)
    )
    response = admin.post("super_admin", f"/admin/sources/{source}/sync")
    assert response.status_code == 303
    page = admin.client.get(response.headers["location"])
    assert "Company share is being synced already." in page.text
    assert [job.status for job in jobs_of(admin, source)] == ["running"]
    assert sync_actions(admin) == []


@pytest.mark.skipif(
    SYNC_MODULE_MISSING,
    reason="copilot.knowledge.sources (sync_source) comes with branch i13-sync: not merged yet",
)
def test_sync_now_runs_the_sync_in_the_background(admin: Admin, tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "parking.md").write_text("# Parking\n\nVisitors park in the wombat lot.\n")
    source = add_source(admin, "Company share", str(folder))
    response = admin.post("super_admin", f"/admin/sources/{source}/sync")
    assert response.status_code == 303
    assert "Sync of Company share started." in admin.client.get(response.headers["location"]).text
    assert sync_actions(admin) == ["super_admin@example.com"]
    deadline = time.monotonic() + 60
    while True:
        jobs = jobs_of(admin, source)
        if jobs and jobs[-1].status != "running":
            break
        assert time.monotonic() < deadline, "the sync did not finish in 60 s"
        admin.run(lambda: asyncio.sleep(0.2))
    (job,) = jobs
    assert (job.status, job.trigger, job.full, job.added) == ("succeeded", "admin", False, 1)
    page = BeautifulSoup(admin.client.get("/admin/sources").text, "lxml")
    row = page.select_one(f"#jobs-{source} tbody tr")
    assert row is not None and row.get_text(" ", strip=True).startswith("succeeded")


def add_versions(admin: Admin, file_id: uuid.UUID) -> None:
    async def add() -> None:
        async with web_runtime.current().sessions() as session:
            file = await session.get_one(File, file_id)
            file.version = 2
            # Exactly this history (an ingest may have written version 1 already).
            await session.execute(delete(FileVersion).where(FileVersion.file_id == file_id))
            session.add_all(
                [
                    FileVersion(
                        file_id=file_id,
                        version=1,
                        sha256="a" * 64,
                        size_bytes=100,
                        modified_at=STARTED,
                        chunk_count=3,
                        created_at=STARTED + timedelta(minutes=1),
                    ),
                    FileVersion(
                        file_id=file_id,
                        version=2,
                        sha256="b" * 64,
                        size_bytes=120,
                        modified_at=STARTED + timedelta(days=1),
                        chunk_count=1,
                        created_at=STARTED + timedelta(days=1, minutes=1),
                    ),
                ]
            )
            await session.commit()

    admin.run(add)


def test_the_file_page_shows_versions_tags_and_source(admin: Admin) -> None:
    source = add_source(admin, "Company share", "/srv/company")
    attach_to_source(admin, admin.handbook, source, "hr/handbook.md", ["hr", "policies"])
    add_versions(admin, admin.handbook)
    page = admin.as_("super_admin").get(f"/admin/files/{admin.handbook}")
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "lxml")
    facts = dict(
        zip(
            [dt.get_text(strip=True) for dt in soup.select("dl.facts dt")],
            [dd.get_text(" ", strip=True) for dd in soup.select("dl.facts dd")],
            strict=True,
        )
    )
    assert facts["Source"] == "Company share: hr/handbook.md"
    assert facts["Tags"] == "hr policies" and facts["Version"] == "2"
    versions = [
        [cell.get_text(" ", strip=True) for cell in row("td")]
        for row in soup.select("table.stack tbody tr")
    ]
    assert versions == [
        ["2 current", "b" * 12, "120 bytes", "2026-11-21 08:00", "1", "2026-11-21 08:01"],
        ["1", "a" * 12, "100 bytes", "2026-11-20 08:00", "3", "2026-11-20 08:01"],
    ]
    # An uploaded file names no source.
    upload = BeautifulSoup(
        admin.as_("eng_admin").get(f"/admin/files/{admin.eng_guide}").text, "lxml"
    )
    assert upload.select("dl.facts dd")[7].get_text(strip=True) == "uploaded"


def test_the_files_list_filters_by_tag_on_each_database(admin_on_each_database: Admin) -> None:
    admin = admin_on_each_database
    source = add_source(admin, "Company share", "/srv/company")
    attach_to_source(admin, admin.handbook, source, "hr/handbook.md", ["hr", "policies"])
    hostile = admin.add_file("tagged-quote.md", "super_admin", scope="company", text="x")

    async def tag_hostile() -> None:
        async with web_runtime.current().sessions() as session:
            (await session.get_one(File, hostile)).tags = ['it\'s "quoted"', "hrx"]
            await session.commit()

    admin.run(tag_hostile)
    client = admin.as_("super_admin")

    def listed(query: str) -> set[str]:
        response = client.get(f"/admin/files{query}")
        assert response.status_code == 200, response.text[:300]
        soup = BeautifulSoup(response.text, "lxml")
        return {
            row("td")[0].find(string=True, recursive=True).strip()
            for row in soup.select("tbody tr")
            if not row.select_one("td.empty")
        }

    assert {"handbook.md", "eng-guide.md", "tagged-quote.md"} <= listed("")
    assert listed("?tag=hr") == {"handbook.md"}  # the whole tag, not a part of "hrx"
    assert listed("?tag=policies") == {"handbook.md"}
    assert listed("?tag=it%27s%20%22quoted%22") == {"tagged-quote.md"}
    assert listed("?tag=missing") == set()
    assert listed(f"?source={source}") == {"handbook.md"}
    bad = client.get("/admin/files?source=not-an-id")
    assert bad.status_code == 400 and "source" in bad.text
    assert client.get("/admin/files?tag=%00").status_code == 400


def test_setting_tags_needs_admin_datasources_and_is_audited(admin: Admin) -> None:
    path = f"/admin/files/{admin.handbook}/tags"
    refused = admin.post("eng_admin", path, {"tags": "hr"})
    assert refused.status_code == 403 and "admin.datasources" in refused.text
    bare = admin.as_("super_admin").post(path, data={"tags": "hr"}, follow_redirects=False)
    assert bare.status_code == 403 and "CSRF" in bare.text
    # The ENG admin's page offers no tag form; the Super Admin's does, with the token.
    eng_page = BeautifulSoup(
        admin.as_("eng_admin").get(f"/admin/files/{admin.eng_guide}").text, "lxml"
    )
    assert eng_page.select_one('form[action$="/tags"]') is None
    page = BeautifulSoup(
        admin.as_("super_admin").get(f"/admin/files/{admin.handbook}").text, "lxml"
    )
    form = page.select_one(f'form[action="{path}"]')
    assert form is not None
    assert form.select_one('input[name="csrf_token"]')["value"] == admin.token("super_admin")  # type: ignore[index]
    assert [action for action, _, _ in admin.audit_actions() if action == "admin.file.tags"] == []

    done = admin.post("super_admin", path, {"tags": " HR , policies,, HR , Travel, "})
    assert done.status_code == 303
    shown = admin.client.get(done.headers["location"]).text
    assert "Tags of handbook.md: HR, policies, Travel." in shown

    async def stored() -> list[str]:
        async with web_runtime.current().sessions() as session:
            return list((await session.get_one(File, admin.handbook)).tags)

    assert admin.run(stored) == ["HR", "policies", "Travel"]
    (entry,) = [e for e in admin.audit_actions() if e[0] == "admin.file.tags"]
    assert entry[1] == "super_admin@example.com"
    assert entry[2] == {"name": "handbook.md", "before": [], "after": ["HR", "policies", "Travel"]}
    too_long = admin.post("super_admin", path, {"tags": "x" * 101})
    assert too_long.status_code == 400 and "Bad tags: a tag has at most 100" in too_long.text
    nul = admin.post("super_admin", path, {"tags": "a\x00b"})
    assert nul.status_code == 400 and "control character" in nul.text
    assert admin.run(stored) == ["HR", "policies", "Travel"]
    cleared = admin.post("super_admin", path, {"tags": ""})
    assert cleared.status_code == 303 and admin.run(stored) == []
    personal = admin.add_file("diary.md", "super_admin", scope="personal", text="x")
    mine = admin.post("super_admin", f"/admin/files/{personal}/tags", {"tags": "x"})
    assert mine.status_code == 403 and "personal files" in mine.text
