"""The API keys page in a real headless Chromium against a real `conveyor api`: an admin
creates a key and sees it once, signs in with it elsewhere, revokes a key after confirming
and the API refuses it at once; a user is not shown the page."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.support import sign_in
from tests.processes import System

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def me(system: System, key: str) -> httpx.Response:
    return httpx.get(
        system.base_url + "/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


async def open_keys(page: Page, system: System) -> None:
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.get_by_role("link", name="API keys").click()
    await expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    await expect(page.locator('tr[data-key="root"]')).to_be_visible()


async def test_an_admin_creates_a_key_sees_it_once_and_signs_in_with_it(
    page: Page, browser: Browser, system: System
):
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await open_keys(page, system)
    for name in ("alice", "bob", "root"):
        await expect(page.locator(f'tr[data-key="{name}"]')).to_have_attribute("data-state", "live")
    await page.get_by_label("Name").fill("ci-bot")
    await page.get_by_label("Role").select_option("user")
    await page.get_by_role("button", name="Create key").click()

    box = page.locator("section.secret")
    await expect(box).to_be_visible()
    await expect(box).to_contain_text("The key of ci-bot (user)")
    await expect(box).to_contain_text("it will not be shown again")
    secret = (await box.locator("[data-secret]").text_content() or "").strip()
    assert secret.startswith("cvk_")
    await box.get_by_role("button", name="Copy").click()
    await expect(box.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator('tr[data-key="ci-bot"]')
    await expect(row).to_have_attribute("data-state", "live")  # the table refreshed
    await expect(row).to_contain_text("user")

    await page.get_by_role("link", name="Queues").click()
    await page.get_by_role("link", name="API keys").click()
    await expect(page.locator('tr[data-key="ci-bot"]')).to_be_visible()
    await expect(page.locator("[data-secret]")).to_have_count(0)  # once: gone when left
    assert secret not in (await page.content())

    elsewhere = await browser.new_context()
    try:
        other = await elsewhere.new_page()
        await sign_in(other, system.base_url, secret, "key:ci-bot (user)")
        await expect(other.get_by_role("link", name="Queues")).to_be_visible()
        await expect(other.get_by_role("link", name="API keys")).to_be_hidden()
    finally:
        await elsewhere.close()
    assert me(system, secret).json()["owner"] == "key:ci-bot"


async def test_revoking_a_key_from_the_page_makes_the_api_refuse_it_at_once(
    page: Page, system: System
):
    made = httpx.post(
        system.base_url + "/v1/keys",
        json={"name": "ci-bot", "role": "user"},
        headers=system.auth("root"),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert me(system, key).status_code == 200  # now in the API's key cache
    await open_keys(page, system)

    await page.get_by_role("button", name="Revoke alice").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Revoke alice?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.locator('tr[data-key="alice"]')).to_have_attribute("data-state", "live")
    assert me(system, system.keys["alice"]).status_code == 200

    await page.get_by_role("button", name="Revoke ci-bot").click()
    await expect(dialog).to_contain_text("Revoke ci-bot? Whatever uses it stops at once")
    await dialog.get_by_role("button", name="Revoke ci-bot").click()
    row = page.locator('tr[data-key="ci-bot"]')
    await expect(row).to_have_attribute("data-state", "revoked")
    await expect(row.get_by_role("button", name="Revoke ci-bot")).to_have_count(0)
    await expect(page.locator("#notice")).to_contain_text("ci-bot is revoked")
    refused = me(system, key)  # right after, within the key cache's 5 s
    assert refused.status_code == 401, refused.text
    assert me(system, system.keys["alice"]).status_code == 200


async def test_an_admin_who_revokes_its_own_key_is_warned_then_signed_out(
    page: Page, system: System
):
    made = httpx.post(
        system.base_url + "/v1/keys",
        json={"name": "ops", "role": "admin"},
        headers=system.auth("root"),
        timeout=10,
    )
    key = made.json()["key"]
    await sign_in(page, system.base_url, key, "key:ops (admin)")
    await page.goto(f"{system.base_url}/#/keys")
    await expect(page.locator('tr[data-key="ops"]')).to_contain_text("(you)")
    await page.get_by_role("button", name="Revoke ops").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Revoke ops, the key you are signed in with?")
    await dialog.get_by_role("button", name="Revoke ops").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#notice")).to_contain_text("You revoked ops")
    assert me(system, key).status_code == 401


async def test_a_taken_or_malformed_name_is_shown_beside_the_field(page: Page, system: System):
    await open_keys(page, system)
    name = page.get_by_label("Name")
    problem = page.locator("#key-name-problem")
    await name.fill("alice")
    await page.get_by_role("button", name="Create key").click()
    await expect(problem).to_contain_text("a key named 'alice' already exists: pick another name")
    await expect(name).to_have_attribute("aria-invalid", "true")
    await name.fill("ci bot")
    await page.get_by_role("button", name="Create key").click()
    await expect(problem).to_contain_text("letters, digits and _ . : - only, not ' '")
    await expect(page.locator("[data-secret]")).to_have_count(0)
    await name.fill("ci-bot")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator("[data-secret]")).to_be_visible()
    await expect(problem).to_be_empty()
    await expect(name).not_to_have_attribute("aria-invalid", "true")


async def test_a_user_sees_no_keys_link_and_the_page_says_it_is_for_admins(
    page: Page, system: System
):
    await sign_in(page, system.base_url, system.keys["alice"], "key:alice (user)")
    await expect(page.get_by_role("link", name="Queues")).to_be_visible()
    await expect(page.locator('#nav a[href="#/keys"]')).to_be_hidden()
    await page.goto(f"{system.base_url}/#/keys")
    await expect(page.get_by_text("This page is for admins")).to_be_visible()
    await expect(page.locator("tr[data-key]")).to_have_count(0)
    r = httpx.get(system.base_url + "/v1/keys", headers=system.auth("alice"), timeout=10)
    assert r.status_code == 403
