"""Cited sources in a real browser, on a desktop and on a phone: the side panel never opens
by itself, a citation "[n]" or a chip opens exactly its source (file, page, passage), the
sources of an earlier answer never mix in, a two-column PDF page fits the panel, and a
resumed chat shows its sources the same way. Screenshots: artifacts/browser/sources/.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
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
    served_as_the_readme_says,
    signed_in_page,
)
from tests.web.browser import chromium as _chromium

SHOTS = ARTIFACTS / "sources"
PAPER = FIXTURES / "pdf_multi-column.pdf"  # the DPR paper: two columns, 13 pages
#: Copied under a name with capitals: the chips keep the file's own case.
PAPER_NAME = "DPR-Paper.pdf"
FIRST = "How much better than BM25 is the dense passage retriever?"
SECOND = "Which datasets are used to evaluate dense passage retrieval?"
pytestmark = pytest.mark.skipif(not PAPER.exists(), reason=f"no {PAPER.name} in {FIXTURES}")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    _chromium()
    home = tmp_path_factory.mktemp("sources-app")
    shutil.copyfile(PAPER, home / PAPER_NAME)
    with served_as_the_readme_says(home, [home / PAPER_NAME]) as running:
        yield running


def _cited(app: RunningApp, question: str) -> list[dict[str, Any]]:
    """The cited sources stored with the answer to `question` (its latest asking)."""
    with sqlite3.connect(app.database) as connection:
        rows = connection.execute(
            "SELECT a.sources FROM messages q JOIN messages a ON a.chat_id = q.chat_id "
            "AND a.role = 'assistant' AND a.created_at > q.created_at "
            "WHERE q.role = 'user' AND q.content = ? ORDER BY q.created_at DESC, a.created_at",
            (question,),
        ).fetchall()
    assert rows, f"no stored answer to {question!r}"
    return [s for s in json.loads(rows[0][0]) if s["cited"]]


def _label(source: dict[str, Any]) -> str:
    return f"[{source['number']}] {source['file_name']}, {source['place']}"


async def _ask(page: Any, question: str, answers_before: int) -> Any:
    """Ask, wait for the answer with its chips, and give its message."""
    from playwright.async_api import expect

    await page.locator("#chat-input").fill(question)
    await expect(page.locator("#chat-submit")).to_be_enabled()
    await page.locator("#chat-submit").click()
    answers = page.locator("[data-step-type=assistant_message]")
    await expect(answers).to_have_count(answers_before + 1)
    answer = answers.nth(answers_before)
    await expect(answer.locator(".cited-source").first).to_be_visible()
    return answer


async def _panel_stays_closed(page: Any) -> None:
    from playwright.async_api import expect

    await page.wait_for_timeout(1_500)  # Chainlit would have opened it by now
    await expect(page.locator("#side-view-content")).to_have_count(0)


async def _shows_exactly(page: Any, source: dict[str, Any]) -> None:
    """The side panel shows this source alone: its label, its passage, its PDF page."""
    from playwright.async_api import expect

    await expect(page.locator("#side-view-title")).to_contain_text(_label(source))
    panel = page.locator("#side-view-content")
    passage = " ".join(source["snippet"].split()[:8])
    await expect(panel.locator(".side-text")).to_contain_text(passage)
    await expect(panel.locator(".side-pdf")).to_have_count(1)  # no other source's PDF
    await expect(panel.locator(".react-pdf__Page canvas")).to_be_visible()
    shown_page = panel.get_by_text(re.compile(r"^\d+ / 13$"))
    await expect(shown_page).to_have_text(f"{source['page']} / 13")
    # The page fits the panel's width at the default zoom (the right column is not cut).
    canvas = await panel.locator(".react-pdf__Page canvas").bounding_box()
    content = await panel.bounding_box()
    assert canvas and content and canvas["x"] + canvas["width"] <= content["x"] + content["width"]


async def _close_panel(page: Any, phone: bool) -> None:
    from playwright.async_api import expect

    if phone:
        await page.keyboard.press("Escape")
    else:
        await page.locator("#side-view-title button").click()
    await expect(page.locator("#side-view-content")).to_have_count(0)


@pytest.mark.parametrize(("device", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_citations_open_their_own_source(
    app: RunningApp, device: str, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=120_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone = viewport == PHONE
    options = {"is_mobile": True, "has_touch": True} if phone else {}
    async with browser_context(viewport, **options) as (context, guard):
        page = await signed_in_page(context, app)
        await expect(page.get_by_text("What can you do?")).to_be_visible()

        first = await _ask(page, FIRST, 0)
        await _panel_stays_closed(page)
        await page.screenshot(path=SHOTS / f"{device}-1-first-answer.png")
        second = await _ask(page, SECOND, 1)
        await _panel_stays_closed(page)
        await page.screenshot(path=SHOTS / f"{device}-2-second-answer.png")
        first_sources, second_sources = _cited(app, FIRST), _cited(app, SECOND)

        # Chips: one per cited source of their own answer, in the file's own case, with
        # the place; the earlier answer's chips stay with it.
        chips = second.locator(".cited-source")
        await expect(chips).to_have_text([_label(s) for s in second_sources])
        await expect(first.locator(".cited-source")).to_have_text(
            [_label(s) for s in first_sources]
        )
        assert all(s["file_name"] == PAPER_NAME for s in first_sources + second_sources)

        # The second answer's [1] opens its own first source, nothing else.
        await second.locator("a.element-link", has_text="[1]").first.click()
        await _shows_exactly(page, second_sources[0])
        await page.screenshot(path=SHOTS / f"{device}-3-citation-opened.png")
        if not phone:  # zooming in still enlarges the page past the panel's width
            pdf = page.locator("#side-view-content .side-pdf")
            await pdf.hover()
            await pdf.locator("button:has(svg.lucide-zoom-in)").click()
            await expect(pdf.get_by_text("125%")).to_be_visible()
            await page.wait_for_timeout(1_000)  # the page is drawn again
            zoomed = await pdf.locator(".react-pdf__Page canvas").bounding_box()
            panel = await pdf.bounding_box()
            assert zoomed and panel and zoomed["width"] > panel["width"]
            await page.screenshot(path=SHOTS / f"{device}-3b-zoomed-in.png")
        await _close_panel(page, phone)

        # A chip of the first answer opens that answer's source.
        await first.locator(".cited-source").last.click()
        await _shows_exactly(page, first_sources[-1])
        await page.screenshot(path=SHOTS / f"{device}-4-earlier-chip-opened.png")
        await _close_panel(page, phone)

        # Resumed from the sidebar: the same chips and citations. (A reload would resume the
        # chat at its own address; the start page has none open.)
        await page.goto(app.url)
        await expect(page.locator("[data-step-type=assistant_message]")).to_have_count(0)
        if phone:
            await page.locator("#sidebar-trigger-button").click()
        await page.get_by_text(FIRST).first.click()
        answers = page.locator("[data-step-type=assistant_message]")
        await expect(answers).to_have_count(2)
        await _panel_stays_closed(page)
        resumed = answers.nth(1)
        await expect(resumed.locator(".cited-source")).to_have_text(
            [_label(s) for s in second_sources]
        )
        await resumed.locator("a.element-link", has_text="[1]").first.click()
        await _shows_exactly(page, second_sources[0])
        await page.screenshot(path=SHOTS / f"{device}-5-resumed-citation-opened.png")
    assert_offline(guard)  # the sources, their chips and PDFs come from the app alone
