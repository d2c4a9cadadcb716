"""The login page shows our sign-in refusals in words, in a real browser (findings 5, 7).

Runs when COPILOT_TEST_CHROMIUM names a Chromium binary, like tests/web/test_browser.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from copilot.knowledge.embeddings import LocalMiniLM
from copilot.settings import Settings
from tests.security._auth_support import live_app


def _chromium() -> str:
    path = os.environ.get("COPILOT_TEST_CHROMIUM", "")
    if not path:
        pytest.skip("COPILOT_TEST_CHROMIUM is not set; set it to a Chromium binary to run")
    return path


async def test_the_login_page_says_too_many_attempts(
    tmp_path: Path, embeddings: LocalMiniLM
) -> None:
    from playwright.async_api import async_playwright, expect

    settings = Settings(data_dir=tmp_path / "data", sign_in_max_failures_per_account=2)
    async with live_app(settings, embeddings) as live:
        principal = await live.account("typo", role="Regular User", department="ENG")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=_chromium(),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = await browser.new_page()
            page.set_default_timeout(30_000)
            await page.goto(live.url)
            for attempt in range(3):
                await page.fill("input#email", principal.email)
                await page.fill("input#password", f"wrong {attempt}")
                await page.click("button[type=submit]")
                if attempt < 2:  # our words for a wrong password (Unauthorized)
                    await expect(page.get_by_text("Wrong email or password.")).to_be_visible()
            # In the form's alert (the error toast is hidden on the login page).
            form_alert = page.get_by_role("alert").filter(has_text="Too many failed sign-ins")
            await expect(form_alert).to_be_visible()
            await browser.close()
