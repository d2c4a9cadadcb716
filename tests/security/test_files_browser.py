"""Originals in a real browser (headless Chromium): the chat's PDF viewer still renders a
cited PDF under the new headers, and an uploaded HTML file is saved, never rendered.

Started the way the README starts the app (`copilot setup`, `copilot ingest`, `copilot
serve`). Runs when COPILOT_TEST_CHROMIUM names the browser; skips with the reason otherwise.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security._files_support import text_pdf
from tests.security.test_files_security import SCRIPT_HTML
from tests.web.browser import chromium as _chromium
from tests.web.browser import served_as_the_readme_says

WIFI = "The guest wifi password rotates every Monday at nine in the morning."


@dataclass
class App:
    url: str
    email: str
    password: str
    html_id: uuid.UUID


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    _chromium()
    home = tmp_path_factory.mktemp("files-browser")
    (home / "wifi.pdf").write_bytes(text_pdf([WIFI]))
    (home / "plan.html").write_text(SCRIPT_HTML)
    with served_as_the_readme_says(home, [home / "wifi.pdf", home / "plan.html"]) as running:
        with sqlite3.connect(running.database) as connection:
            (html_id,) = connection.execute(
                "SELECT id FROM files WHERE original_name = 'plan.html'"
            ).fetchone()
        yield App(running.url, running.email, running.password, uuid.UUID(str(html_id)))


async def test_the_pdf_viewer_renders_a_cited_pdf_and_html_is_only_saved(app: App) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=60_000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        await page.goto(app.url)
        await page.fill("input#email", app.email)
        await page.fill("input#password", app.password)
        await page.click("button[type=submit]")
        await expect(page.get_by_text("What can you do?")).to_be_visible()

        await page.locator("#chat-input").fill("When does the guest wifi password rotate?")
        await expect(page.locator("#chat-submit")).to_be_enabled()
        await page.locator("#chat-submit").click()
        cited = page.get_by_text(re.compile(r"\[\d+\] wifi\.pdf, p\. 1")).first
        await expect(cited).to_be_visible()
        await cited.click()
        # pdf.js (react-pdf) fetched /files/{id} and drew the page, text layer included.
        await expect(page.locator(".react-pdf__Page canvas").first).to_be_visible()
        # Its text layer holds the page's words (hidden at fit-to-width zoom, shown when zoomed).
        await expect(page.locator(".react-pdf__Page__textContent").first).to_contain_text(
            "guest wifi"
        )

        # The HTML original is a download: the browser saves it and runs none of its script.
        async with page.expect_download() as downloading:
            await page.evaluate(
                """url => { const a = document.createElement('a'); a.href = url;
                document.body.appendChild(a); a.click(); }""",
                f"/files/{app.html_id}",
            )
        download = await downloading.value
        assert download.suggested_filename == "plan.html"
        saved = Path(await download.path())
        assert "<script>" in saved.read_text()
        await browser.close()
