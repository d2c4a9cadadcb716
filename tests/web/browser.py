"""What every browser test needs: Chromium from COPILOT_TEST_CHROMIUM, the app started as the
README starts it, the two viewports we promise, and a guard that keeps the page offline.

The guard aborts every request to a host other than the app's and records it: a user behind
a firewall gets no fonts or styles from a CDN, so a test that saw one must fail
(`browser_context` asserts it on exit; `assert_offline` checks it at any step).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from copilot.bench.serving import (
    copilot_env,
    embedded_redis_pid,
    run_copilot,
    serve_subprocess,
    still_running,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: The company knowledge most browser tests ask about.
POLICY = """# Travel policy

Employees book flights through the travel portal. Economy class is the default for flights
under six hours. Hotel costs are reimbursed up to 180 euros per night in Europe.
"""
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium() -> str:
    """The browser binary, or a skip that says how to run these tests."""
    path = os.environ.get("COPILOT_TEST_CHROMIUM", "")
    if not path:
        pytest.skip("COPILOT_TEST_CHROMIUM is not set; set it to a Chromium binary to run")
    if not os.access(path, os.X_OK):
        pytest.fail(f"COPILOT_TEST_CHROMIUM={path} is set but not an executable")
    return path


@dataclass
class RunningApp:
    url: str
    email: str
    password: str
    database: Path


@contextlib.contextmanager
def served_as_the_readme_says(home: Path, knowledge: list[Path]) -> Iterator[RunningApp]:
    """`copilot setup`, `copilot ingest` of `knowledge`, then `copilot serve` until healthy
    (stopped on exit, as a process manager stops it, with nothing of it left running): the
    app exactly as a new user starts it."""
    env = copilot_env(home / "data")
    setup = run_copilot(["setup"], env, cwd=home)
    match = re.search(r"demo admin: (\S+) / (\S+)", setup)
    assert match, setup
    if knowledge:
        run_copilot(["ingest", *map(str, knowledge)], env, cwd=home)
    with (
        (home / "serve.log").open("wb") as log,
        serve_subprocess(env, cwd=home, log=log, timeout=240) as server,
    ):
        started = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
        redis = embedded_redis_pid(home / "data")
        yield RunningApp(server.url, match.group(1), match.group(2), home / "data" / "copilot.db")
    survivors = still_running(started | ({redis} if redis else set()))
    assert survivors == [], f"copilot serve left processes running: {survivors}"


@dataclass
class OfflineGuard:
    """Requests the page tried to send off this machine (all of them were aborted)."""

    blocked: list[str] = field(default_factory=list)

    async def install(self, context: Any) -> None:
        async def route(route: Any) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                await route.continue_()
            else:
                self.blocked.append(route.request.url)
                await route.abort()

        await context.route("**/*", route)


def assert_offline(guard: OfflineGuard) -> None:
    assert guard.blocked == [], f"the page asked hosts other than the app's: {guard.blocked}"


@contextlib.asynccontextmanager
async def browser_context(
    viewport: dict[str, int] = DESKTOP, **options: Any
) -> AsyncIterator[tuple[Any, OfflineGuard]]:
    """A fresh Chromium context at `viewport` with the offline guard installed; yields the
    context and the guard, and asserts on exit that the page asked no other host (a test
    may also call `assert_offline` earlier, to fail at the step that went online)."""
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=viewport, **options)
            guard = OfflineGuard()
            await guard.install(context)
            context.on("page", _log_console)
            yield context, guard
            assert_offline(guard)
        finally:
            await browser.close()


def _log_console(page: Any) -> None:
    """Append what `page` prints to its console, and its uncaught errors, to
    artifacts/browser/console.log: a failure on CI shows what the page itself saw."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]

    def write(kind: str, text: str) -> None:
        with (ARTIFACTS / "console.log").open("a") as log:
            log.write(f"{test} [{kind}] {page.url} {text}\n")

    page.on("console", lambda message: write(message.type, message.text))
    page.on("pageerror", lambda error: write("pageerror", str(error)))


async def signed_in_page(context: Any, app: RunningApp, email: str = "", password: str = "") -> Any:
    """A page of `context` signed in (as the demo admin unless told) with the chat ready."""
    from playwright.async_api import expect

    page = await context.new_page()
    page.set_default_timeout(60_000)
    await page.goto(app.url)
    await page.fill("input#email", email or app.email)
    await page.fill("input#password", password or app.password)
    await page.click("button[type=submit]")
    await expect(page.locator("#chat-input")).to_be_visible()
    return page
