"""An answer in a real browser while it is being written, on a desktop and a phone, and its
Regenerate action.

The app is started as the README starts it, with the reveal pace slowed (in its `.env`) so
that a screenshot can be taken while the answer is still arriving, and a second model
configured (never asked: nothing listens at its address), so the model picker shows.
Screenshots go to artifacts/browser/stream/.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

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

SHOTS = ARTIFACTS / "stream"
POLICY = """# Travel policy

Employees book flights through the travel portal. Economy class is the default for flights
under six hours. Hotel costs are reimbursed up to 180 euros per night in Europe.

# Equipment

Every engineer receives a laptop on the first day. Replacement laptops are ordered through
the IT helpdesk and arrive within five working days.
"""
QUESTION = "Describe the equipment engineers get and the hotel costs."
#: Slow enough to see a ~30-word answer being written for about five seconds.
WORDS_PER_SECOND = 6
OTHER_MODEL = {"provider": "openai", "model": "writer", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    chromium()
    home = tmp_path_factory.mktemp("streaming-app")
    (home / "policy.md").write_text(POLICY)
    (home / ".env").write_text(
        f"COPILOT_ANSWER_REVEAL_WORDS_PER_SECOND={WORDS_PER_SECOND}\n"
        f"COPILOT_LLM_ALTERNATIVES='{json.dumps([OTHER_MODEL])}'\n"
    )
    with served_as_the_readme_says(home, [home / "policy.md"]) as running:
        yield running


async def _ask_and_watch(page: Any, question: str, shot: str) -> tuple[str, str]:
    """Ask; screenshot the answer half written; return its text then and once finished."""
    from playwright.async_api import expect

    await expect(page.get_by_text("What can you do?")).to_be_visible()
    await page.locator("#chat-input").fill(question)
    await page.locator("#chat-submit").click()
    answer = page.locator(".step[data-step-type='assistant_message']").last
    await expect(answer).to_contain_text("found", timeout=60_000)  # the first words are in
    await page.wait_for_timeout(1200)
    partial = await answer.inner_text()
    await page.screenshot(path=SHOTS / f"{shot}-mid-stream.png")
    await expect(answer).to_contain_text("[1]", timeout=60_000)
    await expect(answer.locator(".cited-source")).to_have_count(1)  # its chip, while writing
    await expect(page.locator("#stop-button")).to_be_visible()
    await page.screenshot(path=SHOTS / f"{shot}-first-citation.png")
    await expect(page.locator("#stop-button")).to_have_count(0, timeout=60_000)  # done
    await expect(answer.locator(".cited-source")).to_have_count(2)
    await page.screenshot(path=SHOTS / f"{shot}-finished.png")
    await _header_fits(page, page.viewport_size["width"])  # with the share button now
    return partial, await answer.inner_text()


async def test_an_answer_is_seen_being_written_on_desktop_and_phone(app: RunningApp) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    guards = []
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        async with browser_context(viewport) as (context, guard):
            page = await signed_in_page(context, app)
            partial, finished = await _ask_and_watch(page, QUESTION, f"01-{name}")
        guards.append(guard)
        # Half written: some words, not yet the last ones nor the sources.
        assert 3 <= len(partial.split()) < len(finished.split()) - 3, (partial, finished)
        assert finished.startswith(partial.rstrip(" .…")[:20])
    for guard in guards:
        assert_offline(guard)


async def test_regenerate_answers_the_question_again_in_the_same_chat(app: RunningApp) -> None:
    from playwright.async_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with browser_context(DESKTOP) as (context, guard):
        page = await signed_in_page(context, app)
        await _ask_and_watch(page, QUESTION, "02-before-regenerate")
        answers = page.locator(".step[data-step-type='assistant_message']")
        await expect(answers).to_have_count(1)
        regenerate = page.get_by_role("button", name=re.compile("Regenerate"))
        await expect(regenerate).to_be_visible()
        await page.screenshot(path=SHOTS / "03-regenerate-button.png")
        await regenerate.first.click()
        await expect(answers).to_have_count(2)
        await page.wait_for_timeout(1200)
        await page.screenshot(path=SHOTS / "04-regenerating-mid-stream.png")
        await expect(page.locator("#stop-button")).to_have_count(0, timeout=60_000)
        await expect(answers.last.locator(".cited-source")).to_have_count(2)
        await page.screenshot(path=SHOTS / "05-regenerated.png")
        await expect(page.get_by_text(re.compile(r"^Used "))).to_have_count(0)  # no step shown
        first, second = await answers.first.inner_text(), await answers.last.inner_text()
    assert second == first

    with sqlite3.connect(app.database) as connection:
        rows = connection.execute("SELECT role, model FROM messages ORDER BY created_at").fetchall()
    assert rows[-3:] == [("user", None), ("assistant", "extractive"), ("assistant", "extractive")]
    assert_offline(guard)


async def _header_fits(page: Any, width: int) -> None:
    """Every control of the header, the picker among them, is whole on the screen."""
    controls = page.locator("#header button, #header a")
    await controls.last.wait_for()
    for index in range(await controls.count()):
        box = await controls.nth(index).bounding_box()
        if box is not None:  # not drawn (a screen reader's text)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (index, box)


async def test_the_model_picker_offers_both_models_the_extractive_one_chosen(
    app: RunningApp,
) -> None:
    from playwright.async_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    guards = []
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        async with browser_context(viewport) as (context, guard):
            guards.append(guard)
            page = await signed_in_page(context, app)
            picker = page.locator("#chat-profiles")
            await expect(picker).to_be_visible()
            await expect(picker).to_contain_text("extractive")
            await _header_fits(page, viewport["width"])
            await picker.click()
            await expect(page.get_by_text("openai:writer").last).to_be_visible()
            await page.screenshot(path=SHOTS / f"06-{name}-model-picker.png")
    for guard in guards:
        assert_offline(guard)
