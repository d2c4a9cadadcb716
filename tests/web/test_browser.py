"""A new user's path through the product in a real browser (headless Chromium).

The app is started the way the README starts it (`copilot setup`, then `copilot serve`),
with company knowledge added by `copilot ingest`. Screenshots are kept under
artifacts/browser/ for a person to look at. Runs when COPILOT_TEST_CHROMIUM names the
browser (CI sets it); skips with the reason otherwise.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.bench.serving import copilot_env, run_copilot
from tests.conftest import FIXTURES
from tests.web.browser import ARTIFACTS, POLICY, RunningApp, served_as_the_readme_says
from tests.web.browser import chromium as _chromium


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    _chromium()
    home = tmp_path_factory.mktemp("browser-app")
    (home / "policy.md").write_text(POLICY)
    with served_as_the_readme_says(home, [home / "policy.md"]) as running:
        yield running


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")
async def test_sign_in_ask_upload_feedback_resume(app: RunningApp) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=60_000)  # answers on two busy cores can take seconds
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)

        # Sign in.
        await page.goto(app.url)
        await page.fill("input#email", app.email)
        await page.fill("input#password", app.password)
        await page.screenshot(path=ARTIFACTS / "01-sign-in.png")
        await page.click("button[type=submit]")
        composer = page.locator("#chat-input")
        # The starters render once the chat's socket is connected: only then ask.
        await expect(page.get_by_text("What can you do?")).to_be_visible()

        # Ask: a streamed answer that cites the policy, with the source one click away.
        await composer.fill("How much is the hotel reimbursement per night?")
        submit = page.locator("#chat-submit")
        await expect(submit).to_be_enabled()
        await submit.click()
        answer = page.get_by_text("180 euros", exact=False).last
        await expect(answer).to_be_visible()
        source = page.get_by_text(re.compile(r"\[\d+\] policy\.md")).first
        await expect(source).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "02-cited-answer.png")
        await source.click()
        await expect(
            page.get_by_text("Hotel costs are reimbursed", exact=False).last
        ).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "03-source-opened.png")

        # Upload a PDF as personal knowledge, then ask about it.
        await page.locator("input[type=file]").first.set_input_files(
            FIXTURES / "pdf_multi-column.pdf"
        )
        await composer.fill("How much better than BM25 is the dense passage retriever?")
        await expect(submit).to_be_enabled()  # the upload has reached the server
        await submit.click()
        # Embedding 66 chunks on two cores takes a while.
        await expect(page.get_by_text("indexed pdf_multi-column.pdf: 13 pages")).to_be_visible(
            timeout=240_000
        )
        cited_pdf = page.get_by_text(re.compile(r"\[\d+\] pdf_multi-column\.pdf, p\. \d+")).first
        await expect(cited_pdf).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "04-upload-and-answer.png")

        # Thumbs down with a comment.
        await page.locator(".negative-feedback-off").last.click()
        await page.locator("textarea").last.fill("Please quote the Top-5 accuracy too.")
        await page.get_by_role("button", name=re.compile("submit", re.I)).click()
        await page.wait_for_timeout(1000)
        await page.screenshot(path=ARTIFACTS / "05-feedback.png")

        # Reload: the chat is in the sidebar and resumes with its history.
        await page.reload()
        thread = page.get_by_text("How much is the hotel reimbursement per night?").first
        await expect(thread).to_be_visible()
        await thread.click()
        await expect(page.get_by_text("indexed pdf_multi-column.pdf", exact=False)).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "06-resumed.png")
        await browser.close()

    feedback = _query(app.database, "SELECT value, comment FROM feedback")
    assert feedback == [(-1, "Please quote the Top-5 accuracy too.")]
    answers = _query(
        app.database,
        "SELECT sources, model FROM messages WHERE role='assistant' AND sources != '[]'",
    )
    assert len(answers) >= 2 and all(model == "extractive" for _, model in answers)
    assert any("pdf_multi-column.pdf" in str(sources) for sources, _ in answers)


def _add_user(app: RunningApp, email: str, password: str) -> None:
    data_dir = app.database.parent
    run_copilot(["users", "add", email, "--password", password], copilot_env(data_dir), data_dir)


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"no fixtures at {FIXTURES}")
async def test_admin_reviews_the_conversation_and_a_regular_user_is_refused(
    app: RunningApp,
) -> None:
    """Runs after the test above, which leaves a chat with a thumbs-down to review."""
    from playwright.async_api import async_playwright, expect

    negative = _query(app.database, "SELECT count(*) FROM feedback WHERE value = -1")
    assert negative[0][0] >= 1, "needs the thumbs-down left by test_sign_in_ask_upload..."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _add_user(app, "reader@example.com", "reader-password-1")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = await context.new_page()
        page.set_default_timeout(60_000)

        # Not signed in: /admin sends you to the chat's sign-in, the same one for both, and
        # back to /admin once signed in.
        await page.goto(f"{app.url}/admin")
        await expect(page.locator("input#email")).to_be_visible()
        await page.fill("input#email", app.email)
        await page.fill("input#password", app.password)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(f"{app.url}/admin/conversations")

        # Conversations with negative feedback.
        await page.goto(f"{app.url}/admin/conversations")
        await page.select_option("select[name=feedback]", "negative")
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(re.compile(r"feedback=negative"))
        row = page.get_by_role("link", name=re.compile("hotel reimbursement", re.I)).first
        await expect(row).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "07-admin-negative-feedback.png", full_page=True)

        # The transcript: questions, answers, cited sources and the comment.
        await row.click()
        await expect(page.get_by_text("Please quote the Top-5 accuracy too.")).to_be_visible()
        await expect(page.get_by_text("pdf_multi-column.pdf").first).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "08-admin-transcript.png", full_page=True)

        # Export the filtered conversations as CSV.
        await page.go_back()
        async with page.expect_download() as waiting:
            await page.get_by_role("link", name="CSV").click()
        download = await waiting.value
        exported = Path(await download.path()).read_text()
        assert exported.startswith("conversation_id,") and "Top-5 accuracy" in exported

        # Analytics draws its charts with the app's own Plotly.
        await page.goto(f"{app.url}/admin/analytics")
        await expect(page.locator("figure.chart .main-svg").first).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "09-admin-analytics.png", full_page=True)

        # A regular user is refused.
        reader = await browser.new_context(viewport={"width": 1280, "height": 900})
        reader_page = await reader.new_page()
        await reader_page.goto(app.url)
        await reader_page.fill("input#email", "reader@example.com")
        await reader_page.fill("input#password", "reader-password-1")
        await reader_page.click("button[type=submit]")
        await expect(reader_page.locator("#chat-input")).to_be_visible()
        response = await reader_page.goto(f"{app.url}/admin/conversations")
        assert response is not None and response.status == 403
        await expect(reader_page.get_by_text("admin.conversations")).to_be_visible()
        await reader_page.screenshot(path=ARTIFACTS / "10-admin-refused.png")
        await browser.close()

    audited = _query(app.database, "SELECT action FROM audit_log ORDER BY created_at")
    actions = [action for (action,) in audited]
    assert "admin.view.transcript" in actions and "admin.export" in actions


HANDBOOK = FIXTURES / "handbook-872p.docx"


async def _signed_in(context: object, app: RunningApp, *, sign_in: bool = True) -> object:
    """A new chat in a new tab of `context` (signing in first unless it has already)."""
    page = await context.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(60_000)
    # An upload sent before the chat's socket is connected is refused (404): wait for it.
    async with page.expect_websocket(timeout=60_000) as opened:
        await page.goto(app.url)
        if sign_in:
            await page.fill("input#email", app.email)
            await page.fill("input#password", app.password)
            await page.click("button[type=submit]")
    await (await opened.value).wait_for_event("framereceived")
    ready = page.get_by_text("What can you do?").or_(page.get_by_text(re.compile(r"\d+%")))
    await ready.first.wait_for()
    return page


def _percent(text: str) -> int:
    found = re.search(r"(\d+)%", text)
    return int(found.group(1)) if found else -1


@pytest.mark.skipif(not HANDBOOK.exists(), reason=f"no {HANDBOOK.name} in {FIXTURES}")
async def test_a_big_upload_shows_live_progress_while_another_chat_answers(
    app: RunningApp,
) -> None:
    """The 872-page handbook is ingested in the background: its message counts up, a second
    chat lists it with the same progress, and a question there is answered meanwhile, on a
    desktop and on a phone."""
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=120_000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        desktop = await browser.new_context(viewport={"width": 1280, "height": 900})
        uploader: Any = await _signed_in(desktop, app)
        submit = uploader.locator("#chat-submit")
        for attempt in range(3):  # the composer's file input is sometimes re-rendered
            await uploader.locator("input[type=file]").first.set_input_files(HANDBOOK)
            try:
                await expect(submit).to_be_enabled(timeout=20_000)  # the upload arrived
                break
            except AssertionError:
                if attempt == 2:
                    raise
        await submit.click()
        progress = uploader.get_by_text(re.compile(r"handbook-872p\.docx: .*\d+%")).last
        await expect(progress).to_be_visible()
        await uploader.screenshot(path=ARTIFACTS / "11-upload-progress.png")
        first = _percent(await progress.inner_text())

        # A second chat of the same user: it shows the upload, and answers meanwhile.
        other: Any = await _signed_in(desktop, app, sign_in=False)
        listed = other.get_by_text(re.compile(r"handbook-872p\.docx: .*\d+%")).last
        await expect(listed).to_be_visible()
        await other.screenshot(path=ARTIFACTS / "12-other-chat-lists-the-upload.png")
        await other.locator("#chat-input").fill("How much is the hotel reimbursement per night?")
        await other.locator("#chat-submit").click()
        await expect(other.get_by_text("180 euros", exact=False).last).to_be_visible()
        # Still listed, above the question. Its place among the messages is read in one step
        # in the page: the line is redrawn as it counts, and the chat scrolls to the newest
        # message on every redraw, so neither a found element nor the viewport holds still.
        places = await other.evaluate(
            """() => {
                const texts = [...document.querySelectorAll('[role=article]')]
                    .map(article => article.innerText.trim());
                return {
                    upload: texts.findLastIndex(t => /handbook-872p\\.docx: .*\\d+%/.test(t)),
                    question: texts.indexOf('How much is the hotel reimbursement per night?'),
                };
            }"""
        )
        assert 0 <= places["upload"] < places["question"], places
        await listed.evaluate("line => line.scrollIntoView({block: 'center'})")
        await other.screenshot(path=ARTIFACTS / "12-other-chat-answers-during-upload.png")
        status = _query(
            app.database, "SELECT status FROM files WHERE original_name LIKE 'handbook%'"
        )
        assert status == [("processing",)]  # answered while the upload was still running

        # The upload's own message has moved on meanwhile.
        later, deadline = first, time.monotonic() + 240
        while later <= first and time.monotonic() < deadline:
            await uploader.wait_for_timeout(1_000)
            later = _percent(await progress.inner_text())
        await uploader.screenshot(path=ARTIFACTS / "13-upload-progress-later.png")
        assert later > first >= 0, (first, later)

        phone = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        mobile: Any = await _signed_in(phone, app)
        await expect(
            mobile.get_by_text(re.compile(r"handbook-872p\.docx: .*\d+%")).last
        ).to_be_visible()
        await mobile.screenshot(path=ARTIFACTS / "14-phone-upload-progress.png")
        await browser.close()
