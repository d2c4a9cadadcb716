"""Uploads and the files page in a real browser (headless Chromium), desktop and phone.

An upload shows its progress in the conversation and names the chat; the files page lists
it and deletes it after asking; an unsupported file is refused in words, with no empty
bubble and no endless preview. Screenshots: artifacts/browser/files/.
"""

from __future__ import annotations

import re
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.web.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    RunningApp,
    assert_offline,
    browser_context,
    chromium,
    served_as_the_readme_says,
    signed_in_page,
)

SHOTS = ARTIFACTS / "files"
UPLOAD = "language-docs_eng_spa_mult.docx"  # a few chunks: quick to embed on two cores


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    chromium()
    home = tmp_path_factory.mktemp("browser-files")
    with served_as_the_readme_says(home, []) as running:
        yield running


async def _attach(page: Any, path: Path) -> None:
    """Attach `path` with the paperclip and wait until it has reached the server. Uploads
    go to the chat's socket session: the starters (fetched over HTTP) can show before it is
    connected, and an upload sent before then never completes; so wait, and retry once."""
    from playwright.async_api import expect

    for attempt in range(2):
        await page.wait_for_timeout(2000)
        await page.locator("input[type=file]").first.set_input_files(path)
        try:
            await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
            return
        except AssertionError:
            if attempt:
                raise
            await page.reload()
            await expect(page.get_by_text("What can you do?")).to_be_visible()


def _files(app: RunningApp) -> list[tuple[str, str]]:
    with sqlite3.connect(app.database) as connection:
        rows = connection.execute("SELECT original_name, status FROM files").fetchall()
    return [(str(name), str(status)) for name, status in rows]


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_upload_progress_title_files_page_and_delete(
    app: RunningApp, viewport: dict[str, int], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = "desktop" if viewport == DESKTOP else "phone"
    async with browser_context(viewport) as (context, guard):
        page = await signed_in_page(context, app)
        await expect(page.get_by_text("What can you do?")).to_be_visible()

        # Upload: the notice shows the stages in the conversation, then the result.
        submit = page.locator("#chat-submit")
        await _attach(page, FIXTURES / UPLOAD)
        await submit.click()
        progress = page.get_by_text(
            re.compile(rf"{re.escape(UPLOAD)}: (queued|reading|splitting|embedding|adding)")
        )
        await expect(progress.first).to_be_visible()
        await page.screenshot(path=SHOTS / f"{size}-01-progress.png")
        done = page.get_by_text(re.compile(rf"indexed {re.escape(UPLOAD)}: \d+ chunks?"))
        await expect(done).to_be_visible(timeout=240_000)
        bubble = page.get_by_text(f"Uploaded {UPLOAD}")
        await expect(bubble).to_be_visible()  # the user's bubble names it, no broken preview
        await expect(page.get_by_text("Failed to load")).to_have_count(0)
        notice = page.locator(".step").filter(has=done)
        await expect(notice.locator(".positive-feedback-off")).to_have_count(0)  # not rated
        await page.screenshot(path=SHOTS / f"{size}-02-indexed.png")

        # The chat is named after the file (in the history, after a reload).
        await page.reload()
        if viewport == PHONE:
            await page.get_by_role("button").first.click()  # opens the sidebar
        await expect(page.locator("#thread-history").get_by_text(UPLOAD).first).to_be_visible()
        await page.screenshot(path=SHOTS / f"{size}-03-chat-title.png")

        # The files page lists it; Delete asks first, then removes it.
        await page.goto(app.url + "/my/files")
        row = page.locator("tr", has_text=UPLOAD)
        await expect(row).to_contain_text("ready")
        await page.screenshot(path=SHOTS / f"{size}-04-files-page.png", full_page=True)
        await row.get_by_role("link", name="Delete…").click()
        await expect(page.get_by_role("heading", name=f"Delete {UPLOAD}?")).to_be_visible()
        await page.screenshot(path=SHOTS / f"{size}-05-confirm.png")
        assert (UPLOAD, "ready") in _files(app), "the confirmation page deletes nothing"
        await page.get_by_role("button", name=f"Delete {UPLOAD}").click()
        await expect(
            page.get_by_text(f"Deleted {UPLOAD}; it is no longer searchable.")
        ).to_be_visible()
        await expect(page.locator("tr", has_text=UPLOAD)).to_have_count(0)
        await page.screenshot(path=SHOTS / f"{size}-06-deleted.png")
        assert all(name != UPLOAD for name, _ in _files(app))

        # An unsupported file: refused in words, no empty bubble, no endless preview.
        bundle = tmp_path / "bundle.zip"
        with zipfile.ZipFile(bundle, "w") as archive:
            archive.writestr("notes.txt", "hello")
        await page.goto(app.url)
        await expect(page.get_by_text("What can you do?")).to_be_visible()
        await _attach(page, bundle)
        await submit.click()
        refused = page.get_by_text(re.compile(r'Not added: "bundle\.zip" is a ZIP archive'))
        await expect(refused).to_be_visible()
        await expect(page.get_by_text("plain text and CSV", exact=False).first).to_be_visible()
        await expect(page.get_by_text("Uploaded bundle.zip")).to_be_visible()
        await expect(page.get_by_text("Loading preview")).to_have_count(0)
        await expect(page.get_by_text("application/", exact=False)).to_have_count(0)
        await page.screenshot(path=SHOTS / f"{size}-07-unsupported.png")
        assert all(name != "bundle.zip" for name, _ in _files(app))
    assert_offline(guard)
