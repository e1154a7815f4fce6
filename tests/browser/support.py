"""Launching the system's Chromium and signing in, for tests/browser and the screenshots."""

from __future__ import annotations

import shutil
from typing import Any

import httpx
from playwright.async_api import Browser, Page, Playwright, expect

CHROMIUM = shutil.which("chromium")
ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: the sandbox needs user namespaces it may not have
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium phones home at start (updates, sync, field trials); with no network beyond
    # this machine those connections are refused, and they are nothing a test needs.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch(p: Playwright) -> Browser:
    assert CHROMIUM is not None
    return await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


async def sign_in(page: Page, base_url: str, key: str, who: str) -> None:
    await page.goto(base_url + "/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who-name")).to_contain_text(who)


def submit(base_url: str, key: str, **job: Any) -> int:
    r = httpx.post(
        f"{base_url}/v1/jobs", json=job, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])
