"""A headless Chromium for the dashboard's tests: the system's own (Debian's `chromium`,
installed by `make chromium`), never a browser build downloaded by Playwright. One browser
per module; each test gets a fresh context, so sessionStorage (the signed-in key) is empty.

Playwright's async API, not its sync one: the sync API keeps an event loop marked running
on the test's thread, where pytest-asyncio must run the database fixtures. The browser and
the tests share one loop per module (`loop_scope="module"`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.browser.support import CHROMIUM, launch
from tests.processes import System

# How long an `expect` waits for the page to get there (Playwright's default is 5 s). The
# suite runs in several processes on two cores: a job page that draws two 9,863-cell grids
# once took longer than 5 s to show its timeline. A check still fails when the page never
# gets there; it only waits longer first.
expect.set_options(timeout=15_000)

ANSWERED = "Failed to load resource: the server responded with a status of"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium: run `make chromium` (Debian: apt-get install chromium)")
    async with async_playwright() as p:
        b = await launch(p)
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, system: System) -> AsyncIterator[Page]:
    """A fresh tab; closed before `system` stops, so no open stream sees the API die."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    # A script error or a refused asset (CSP) fails the test, not only a missing element. An
    # HTTP error answer is logged by Chromium too; the page shows those, and tests check it.
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(ANSWERED):
            problems.append(f"console: {message.text}")

    page.on("console", console)
    yield page
    await context.close()
    assert problems == []
