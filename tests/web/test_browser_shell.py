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
