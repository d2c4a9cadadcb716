"""A chat's own address, its resumed buttons and rating, sharing and export, in Chromium.

The app runs as the README starts it; a user asks, the address becomes the chat's
own, a reload resumes that chat with the thumbs showing the rating given before and each
answer's Regenerate button, the chat is shared and opened by a colleague (read-only, an
answer from the owner's personal file hidden), and the owner downloads it as Markdown and
JSON. Desktop and phone; screenshots are kept
under artifacts/browser/threads/ for a person to look at.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.bench.serving import copilot_env, run_copilot
from tests.web.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    POLICY,
    RunningApp,
    assert_offline,
    browser_context,
    served_as_the_readme_says,
    signed_in_page,
)
from tests.web.browser import chromium as _chromium

SHOTS = ARTIFACTS / "threads"
HERON = """# Project Heron

The codename of the Heron launch partner is Bluefinch Logistics.
"""
HOTEL_QUESTION = "How much is the hotel reimbursement per night?"
HERON_QUESTION = "What is the codename of the Heron launch partner?"
CHAT_ADDRESS = re.compile(r"/chat/thread/([0-9a-f-]{36})$")
COLLEAGUE = ("colleague@example.com", "colleague-password-1")
RELOADER = ("reloader@example.com", "reloader-password-1")
#: One owner per viewport: each one's personal upload is theirs alone (search finds it for
#: them only, so the other run's answers never draw on it).
OWNERS = {
    "desktop": ("owner-desktop@example.com", "owner-password-1"),
    "phone": ("owner-phone@example.com", "owner-password-2"),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    _chromium()
    home = tmp_path_factory.mktemp("threads-app")
    (home / "policy.md").write_text(POLICY)
    with served_as_the_readme_says(home, [home / "policy.md"]) as running:
        data_dir = running.database.parent
        for email, password in (COLLEAGUE, RELOADER, *OWNERS.values()):
            run_copilot(
                ["users", "add", email, "--password", password], copilot_env(data_dir), data_dir
            )
        yield running


async def _ask(page: Any, question: str) -> None:
    from playwright.async_api import expect

    await page.locator("#chat-input").fill(question)
    submit = page.locator("#chat-submit")
    await expect(submit).to_be_enabled()
    await submit.click()


async def _export(page: Any, form: str, viewport: dict[str, int]) -> str:
    """Download the chat as `form` as a user does; the downloaded text."""
    name = f"Export this chat as {form}"
    if viewport == PHONE:
        await page.locator("#user-nav-button").click()
        link = page.get_by_role("menuitem", name=name)
    else:
        link = page.locator("#copilot-export").get_by_role("link", name=name)
    async with page.expect_download() as waiting:
        await link.click()
    if viewport == PHONE:
        await page.keyboard.press("Escape")
        await page.get_by_role("menu").wait_for(state="detached")
    return Path(await (await waiting.value).path()).read_text()


async def _chat_id(page: Any) -> str:
    from playwright.async_api import expect

    await expect(page).to_have_url(CHAT_ADDRESS)
    match = CHAT_ADDRESS.search(page.url)
    assert match, page.url
    return match.group(1)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_chat_has_its_address_resumes_rated_is_shared_and_exported(
    app: RunningApp, viewport: dict[str, int], tmp_path: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=120_000)  # a resume on two busy cores can take a minute
    SHOTS.mkdir(parents=True, exist_ok=True)
    device = "desktop" if viewport == DESKTOP else "phone"
    async with browser_context(
        viewport, accept_downloads=True, permissions=["clipboard-read", "clipboard-write"]
    ) as (context, guard):
        page = await signed_in_page(context, app, *OWNERS[device])
        await expect(page.get_by_text("What can you do?")).to_be_visible()
        assert page.url.rstrip("/").endswith("/chat")

        # Ask: once the answer is there, the address is the chat's own.
        await _ask(page, HOTEL_QUESTION)
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        chat_id = await _chat_id(page)
        await page.screenshot(path=SHOTS / f"{device}-01-address-after-first-answer.png")

        # An answer from the owner's personal upload, in the same chat.
        heron = tmp_path / "heron.md"
        heron.write_text(f"{HERON}\nNoted on the {device}.\n")  # not a duplicate upload
        await page.locator("input[type=file]").first.set_input_files(heron)
        await _ask(page, HERON_QUESTION)
        await expect(page.get_by_text("indexed heron.md", exact=False).first).to_be_visible(
            timeout=180_000
        )
        await expect(page.get_by_text("Bluefinch", exact=False).last).to_be_visible()

        # Thumbs up on the first answer, with a comment.
        await page.locator(".positive-feedback-off").first.click()
        await page.locator("textarea").last.fill("Exactly what I needed.")
        await page.get_by_role("button", name=re.compile("submit", re.I)).click()
        await expect(page.locator(".positive-feedback-on")).to_have_count(1)

        # Reload: the same address, the same chat, its buttons and the rating.
        await page.reload()
        assert await _chat_id(page) == chat_id
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        await expect(page.get_by_text("Bluefinch", exact=False).last).to_be_visible()
        await expect(page.locator(".positive-feedback-on")).to_have_count(1)
        await expect(page.locator(".negative-feedback-off").first).to_be_visible()
        await expect(page.locator("button:has(svg[class*=lucide-copy])").first).to_be_visible()
        # One Regenerate per answer, as thumbs (the upload's notice has neither).
        rated = page.locator(".positive-feedback-off, .positive-feedback-on")
        regenerate = page.get_by_role("button", name=re.compile("Regenerate"))
        await expect(regenerate).to_have_count(await rated.count())
        assert await rated.count() == 2
        await page.screenshot(path=SHOTS / f"{device}-02-reloaded-with-rating.png")

        # Export: links beside the share button (in the account menu on a phone).
        markdown = await _export(page, "Markdown", viewport)
        assert HOTEL_QUESTION in markdown and "1. policy.md" in markdown
        assert "> " in markdown and "Rated up: Exactly what I needed." in markdown
        record = json.loads(await _export(page, "JSON", viewport))
        assert record["id"] == chat_id
        assert record["messages"][1]["citations"][0]["file"] == "policy.md"

        # Share it.
        await page.locator("#header button:has(svg[class*=lucide-share])").click()
        await page.get_by_role("button", name="Share", exact=True).click()
        await expect(page.get_by_text("Share link created!")).to_be_visible()
        link = await page.evaluate("navigator.clipboard.readText()")
        assert link.endswith(f"/share/{chat_id}"), link
        await page.screenshot(path=SHOTS / f"{device}-03-shared.png")
        assert_offline(guard)

    # A colleague opens the link: read-only, and the answer from the owner's file is hidden.
    async with browser_context(viewport) as (context, guard):
        page = await signed_in_page(context, app, *COLLEAGUE)
        await page.goto(link)
        await expect(page).to_have_url(re.compile(f"/chat/share/{chat_id}$"))
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        await expect(page.get_by_text("cites a file you may not read").first).to_be_visible()
        assert await page.get_by_text("Bluefinch", exact=False).count() == 0
        assert await page.get_by_text("heron.md", exact=False).count() == 0  # not its name
        assert await page.locator(".positive-feedback-off, .positive-feedback-on").count() == 0
        await page.screenshot(path=SHOTS / f"{device}-04-colleague-shared-view.png")

        # A citation the colleague may read opens its source in the panel, as for the owner.
        answer = page.locator("[data-step-type=assistant_message]", has_text="180 euros").last
        await answer.locator("a.element-link", has_text="[1]").first.click()
        await expect(page.locator("#side-view-content")).to_contain_text("180 euros")
        await expect(page).to_have_url(re.compile(f"/chat/share/{chat_id}$"))
        await page.wait_for_timeout(800)  # the panel slides in
        await page.screenshot(path=SHOTS / f"{device}-04b-colleague-opens-a-citation.png")

        # The chat's own address is the owner's: the colleague lands on the shared view.
        await page.goto(f"{app.url}/chat/thread/{chat_id}")
        await expect(page).to_have_url(re.compile(f"/chat/share/{chat_id}$"))
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        await page.screenshot(path=SHOTS / f"{device}-05-colleague-at-owners-address.png")
        response = await page.request.get(f"{app.url}/chats/{chat_id}/export.md")
        assert response.status == 404
        assert_offline(guard)


async def test_a_reload_resumes_the_chat_even_if_the_page_keeps_its_socket_without_the_id(
    app: RunningApp,
) -> None:
    """At a chat's address Chainlit's page may open two sockets, the first before it has
    read the chat id from the address, and keeps the one whose cookie request came back
    last; on busy cores that was sometimes the first, and the reload showed an empty page
    with no composer (seen on CI). Here every socket the reloaded page opens leaves the id
    out, as that one did: the chat is resumed from the page's address all the same."""
    from playwright.async_api import expect

    expect.set_options(timeout=120_000)
    async with browser_context(DESKTOP) as (context, guard):
        page = await signed_in_page(context, app, *RELOADER)
        await _ask(page, HOTEL_QUESTION)
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        chat_id = await _chat_id(page)

        stripped: list[str] = []

        async def without_the_chat_id(route: Any) -> None:
            body = route.request.post_data or ""
            if '"threadId":"' not in body:
                await route.continue_()
                return
            stripped.append(body)
            await route.continue_(post_data=re.sub(r'"threadId":"[^"]*"', '"threadId":""', body))

        sockets = re.compile(r"/ws/socket\.io/")
        await page.route(sockets, without_the_chat_id)
        await page.reload()
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        await expect(page.locator("#chat-input")).to_be_visible()
        await expect(page.get_by_role("button", name=re.compile("Regenerate"))).to_have_count(1)
        assert await _chat_id(page) == chat_id
        assert any(chat_id in body for body in stripped), stripped  # the id was left out
        await page.screenshot(path=SHOTS / "desktop-06-reloaded-without-the-id.png")

        # The next question goes on in the same chat.
        await _ask(page, "Which class is the default for short flights?")
        await expect(page.get_by_text("Economy class", exact=False).last).to_be_visible()
        assert await _chat_id(page) == chat_id
        roles: list[str] = []
        for _ in range(60):  # the answer is stored as it finishes
            with sqlite3.connect(app.database) as database:
                roles = [
                    role
                    for (role,) in database.execute(
                        "SELECT role FROM messages WHERE chat_id = ? ORDER BY created_at",
                        (uuid.UUID(chat_id).hex,),
                    )
                ]
            if len(roles) >= 4:
                break
            await page.wait_for_timeout(500)
        assert roles == ["user", "assistant"] * 2

        # New chat, from the chat's address: a new chat, not this one resumed.
        await page.unroute(sockets, without_the_chat_id)
        await page.get_by_role("button", name="New chat", exact=True).click()
        await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
        await expect(page.get_by_text("What can you do?")).to_be_visible()
        assert page.url.rstrip("/").endswith("/chat")
        await _ask(page, HOTEL_QUESTION)
        await expect(page.get_by_text("180 euros", exact=False).last).to_be_visible()
        assert await _chat_id(page) != chat_id
        assert_offline(guard)
