"""The product's shell in a real browser: offline assets, first screen, accessibility, admin.

The app is started as the README starts it; every page runs under the harness's offline
guard (tests/web/browser.py), so any request to a host other than the app's fails the test.
Screenshots go to artifacts/browser/shell/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

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

SHOTS = ARTIFACTS / "shell"
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    chromium()
    with served_as_the_readme_says(tmp_path_factory.mktemp("shell-app"), []) as running:
        yield running


def _name(viewport: dict[str, int]) -> str:
    return "desktop" if viewport == DESKTOP else "phone"


@VIEWPORTS
async def test_the_chat_loads_every_asset_from_the_app(
    app: RunningApp, viewport: dict[str, int]
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with browser_context(viewport) as (context, guard):
        page = await signed_in_page(context, app)
        await page.wait_for_load_state("networkidle")
        font = await page.evaluate("getComputedStyle(document.body).fontFamily")
        assert font.startswith("Inter"), font
        assert await page.evaluate("document.fonts.check('16px Inter')")
        assert await page.evaluate(
            "[...document.fonts].some(f => f.family.includes('Inter') && f.status === 'loaded')"
        )
        html = await (await context.request.get(app.url + "/chat/")).text()
        assert "googleapis" not in html and "jsdelivr" not in html
        await page.screenshot(path=SHOTS / f"chat-{_name(viewport)}.png")
        assert guard.blocked == []
    # browser_context asserted on exit that nothing else was asked


async def test_the_guard_fails_a_page_that_asks_another_host(app: RunningApp) -> None:
    with pytest.raises(AssertionError, match="example.org"):
        async with browser_context(DESKTOP) as (context, _):
            page: Any = await context.new_page()
            await page.goto(app.url + "/healthz")
            await page.evaluate("fetch('https://example.org/font.css').catch(() => null)")
            await page.wait_for_timeout(500)


async def _shot(page: Any, name: str) -> None:
    await page.screenshot(path=SHOTS / f"{name}.png")


@VIEWPORTS
async def test_the_login_page_shows_the_product_and_says_when_the_password_is_wrong(
    app: RunningApp, viewport: dict[str, int]
) -> None:
    from playwright.async_api import expect

    async with browser_context(viewport) as (context, _):
        page = await context.new_page()
        await page.goto(app.url)
        await expect(page.locator("input#email")).to_be_visible()
        logo = page.locator("img[alt='logo']").first
        await expect(logo).to_be_visible()
        assert await logo.evaluate("img => img.naturalWidth > 0 && img.complete")
        if viewport == DESKTOP:  # the side panel: our picture, drawn whole, not the favicon
            panel = page.locator("img[src$='login-panel.svg']")
            await expect(panel).to_be_visible()
            assert await panel.evaluate("img => img.naturalWidth > 0")
        await page.click("button[type=submit]")  # empty: the fields' own messages
        required = page.get_by_text("email is a required field")
        await expect(required).to_be_visible()
        # public/copilot.css: #b91c1c on the light page, #fca5a5 on the dark one
        dark = await page.evaluate("document.documentElement.classList.contains('dark')")
        colour = await required.evaluate("e => getComputedStyle(e).color")
        assert colour == ("rgb(252, 165, 165)" if dark else "rgb(185, 28, 28)"), (dark, colour)
        await page.fill("input#email", app.email)
        await page.fill("input#password", "not the password")
        await page.click("button[type=submit]")
        await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
        await page.wait_for_timeout(500)  # the toast would be up by now
        await expect(page.get_by_text("credentialssignin")).to_have_count(0)
        await expect(page.get_by_text("Unauthorized")).to_have_count(0)
        await _shot(page, f"login-wrong-password-{_name(viewport)}")


async def test_icon_buttons_have_names_and_the_page_has_a_heading_and_landmarks(
    app: RunningApp,
) -> None:
    from playwright.async_api import expect

    async with browser_context(DESKTOP) as (context, _):
        page = await signed_in_page(context, app)
        await expect(page.get_by_text("What can you do?")).to_be_visible()
        welcome = page.locator("#copilot-welcome")
        await expect(welcome).to_contain_text("cites each source")
        await expect(welcome).to_contain_text("It knows no documents yet")
        await _shot(page, "welcome-desktop")
        await page.get_by_text("What can you do?").click()
        await expect(page.get_by_role("button", name="Helpful", exact=True)).to_be_visible()
        for name in [
            "Show or hide the chat list",
            "Search chats (Ctrl+K)",
            "New chat",
            "Attach files",
            "Send message",
            "Account menu",
            "Copy",
            "Helpful",
            "Not helpful",
            "Share this chat",
        ]:
            await expect(page.get_by_role("button", name=name, exact=True).first).to_be_visible()
        await page.locator("main").get_by_text("What kinds of questions can you answer").hover()
        await expect(page.get_by_role("button", name="Edit message", exact=True)).to_be_visible()
        unnamed = await page.evaluate(
            """[...document.querySelectorAll('button')].filter(b => b.offsetParent !== null
                && !b.getAttribute('aria-label') && !b.textContent.trim()).map(b => b.outerHTML)"""
        )
        assert unnamed == []
        await expect(page.get_by_role("heading", level=1, name="Copilot")).to_have_count(1)
        await expect(page.get_by_role("main")).to_have_count(1)
        await expect(page.get_by_role("banner")).to_have_count(1)
        await expect(page.get_by_role("navigation", name="Chats")).to_be_visible()
        await expect(page.get_by_text("No language model here: answers quote")).to_be_visible()
        await _shot(page, "chat-answer-desktop")

        # Enter in the rename dialog renames the chat.
        chat = page.locator('[data-sidebar="sidebar"] a').first
        await chat.hover()
        await chat.locator("svg.lucide-ellipsis").click()
        await page.get_by_role("menuitem", name="Rename").click()
        field = page.get_by_role("dialog").locator("input#name")
        await field.fill("Renamed with Enter")
        await field.press("Enter")
        await expect(page.get_by_role("dialog")).to_have_count(0)
        await expect(page.locator('[data-sidebar="sidebar"]')).to_contain_text("Renamed with Enter")

        # The New Chat dialog does not claim the history is cleared.
        await page.get_by_role("button", name="New chat", exact=True).click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("This one stays in the sidebar")
        await expect(dialog).not_to_contain_text("clear")
        await _shot(page, "new-chat-dialog-desktop")
        await page.keyboard.press("Escape")

        # The user menu links the admin pages for a reviewer.
        await page.get_by_role("button", name="Account menu").click()
        link = page.get_by_role("menuitem", name="Admin pages")
        await expect(link).to_have_attribute("href", "/admin")
        await _shot(page, "user-menu-desktop")


async def test_admin_sends_to_sign_in_and_back_and_follows_dark_mode_on_a_phone(
    app: RunningApp,
) -> None:
    from playwright.async_api import expect

    async with browser_context(PHONE, color_scheme="dark") as (context, _):
        page = await context.new_page()
        page.set_default_timeout(60_000)
        await page.goto(app.url + "/admin/users")
        await expect(page).to_have_url(app.url + "/chat/login?next=/admin/users")
        await page.fill("input#email", app.email)
        await page.fill("input#password", app.password)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(app.url + "/admin/users")
        await expect(page.get_by_role("heading", name="Users")).to_be_visible()

        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 28)", background  # the system's dark
        table = page.locator("table").first
        assert await table.evaluate("t => t.scrollWidth > t.clientWidth")  # scrolls itself
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await _shot(page, "admin-users-phone-dark")

        # The chat's own choice wins over the system's.
        await page.evaluate("localStorage.setItem('vite-ui-theme', 'light')")
        await page.reload()
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(246, 247, 250)", background
        await _shot(page, "admin-users-phone-light-by-choice")
