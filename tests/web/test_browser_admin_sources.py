"""/admin/sources in a real browser, on a desktop and on a phone in dark mode: every job
and error readable without the page scrolling sideways. Screenshots go to
artifacts/browser/admin/. The source and its jobs are rows written beside the running app
(the sync itself is tested in tests/knowledge/).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from copilot.db.engine import create_engine, session_factory
from copilot.db.models import DataSource, Department, SyncJob, User
from copilot.settings import Settings
from tests.web.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    RunningApp,
    browser_context,
    chromium,
    served_as_the_readme_says,
    signed_in_page,
)

SHOTS = ARTIFACTS / "admin"
STARTED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    chromium()
    with served_as_the_readme_says(tmp_path_factory.mktemp("sources-app"), []) as running:
        yield running


async def _add_sources(app: RunningApp) -> None:
    engine = create_engine(Settings(data_dir=app.database.parent))
    try:
        async with session_factory(engine)() as session:
            owner = await session.scalar(select(User).where(User.email == app.email))
            eng = await session.scalar(select(Department).where(Department.code == "ENG"))
            assert owner is not None and eng is not None
            company = DataSource(
                name="Company share",
                kind="folder",
                location="/srv/fileserver/company/handbooks-and-policies",
                owner_id=owner.id,
                scope="company",
                classification="internal",
                tags=["policies", "hr"],
                last_synced_at=STARTED + timedelta(minutes=61),
            )
            wiki = DataSource(
                name="Engineering wiki export",
                kind="folder",
                location="/srv/fileserver/eng/wiki",
                owner_id=owner.id,
                scope="department",
                department_id=eng.id,
                classification="confidential",
            )
            session.add_all([company, wiki])
            await session.flush()
            session.add_all(
                [
                    SyncJob(
                        source_id=company.id,
                        status="succeeded",
                        trigger="cli",
                        full=True,
                        started_at=STARTED,
                        finished_at=STARTED + timedelta(seconds=95),
                        added=42,
                    ),
                    SyncJob(
                        source_id=company.id,
                        status="partial",
                        trigger="schedule",
                        started_at=STARTED + timedelta(minutes=60),
                        finished_at=STARTED + timedelta(minutes=61),
                        added=2,
                        updated=3,
                        deleted=1,
                        unchanged=38,
                        failed=1,
                        errors=[
                            {
                                "path": "scans/2025/expense-claims-locked.pdf",
                                "error": "is password-protected; remove the password to add it",
                            }
                        ],
                    ),
                    SyncJob(
                        source_id=wiki.id,
                        status="running",
                        trigger="admin",
                        started_at=STARTED + timedelta(minutes=70),
                    ),
                ]
            )
            await session.commit()
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("viewport", "scheme"), [(DESKTOP, "light"), (PHONE, "dark")], ids=["desktop", "phone-dark"]
)
async def test_the_sources_page_reads_on_a_desktop_and_a_phone(
    app: RunningApp, viewport: dict[str, int], scheme: str
) -> None:
    from playwright.async_api import expect

    if viewport == DESKTOP:
        await _add_sources(app)  # the first of the two runs
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with browser_context(viewport, color_scheme=scheme) as (context, _):
        page = await signed_in_page(context, app)
        await page.goto(app.url + "/admin/sources")
        await expect(page.get_by_role("heading", name="Data sources")).to_be_visible()
        await expect(page.get_by_role("link", name="Data sources")).to_have_attribute(
            "aria-current", "page"
        )
        sync = page.get_by_role("button", name="Sync now")
        await expect(sync).to_have_count(1)  # the running source offers none
        await expect(sync).to_be_in_viewport()
        await expect(page.get_by_text("expense-claims-locked.pdf")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        if viewport == PHONE:
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(21, 23, 28)", background
            # One card per row: every cell, error included, fits the phone's width.
            widest = await page.evaluate(
                "Math.max(...[...document.querySelectorAll('table.stack td')]"
                ".map(td => td.getBoundingClientRect().right))"
            )
            assert widest <= viewport["width"], widest
        name = "desktop" if viewport == DESKTOP else "phone-dark"
        await page.screenshot(path=SHOTS / f"sources-{name}.png", full_page=True)
