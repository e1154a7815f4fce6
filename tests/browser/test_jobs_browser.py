"""The jobs browser in a real Chromium against a real `conveyor api` and `conveyor worker`:
state tabs with counts, filters and search, live updates, and bulk cancel, retry (500 dead
jobs at once) and delete, each checked through the API afterwards."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.support import sign_in, submit
from tests.processes import System

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def api(system: System, method: str, path: str, who: str = "root", **kw) -> httpx.Response:
    r = httpx.request(method, system.base_url + path, headers=system.auth(who), timeout=30, **kw)
    assert r.status_code < 300, r.text
    return r


async def until(check, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.2)):
        if check():
            return
        await asyncio.sleep(0.2)
    assert check()


def tab(page: Page, state: str):
    return page.locator(f'.state-tabs button[data-state="{state}"]')


async def test_tabs_count_each_state_and_filters_and_search_narrow_the_list(
    page: Page, system: System
):
    alice = system.keys["alice"]
    later = submit(system.base_url, alice, kind="demo.noop", delay_s=3600, queue="browse")
    keyed = submit(
        system.base_url,
        alice,
        kind="demo.sleep",
        payload={"seconds": 0.01},
        idempotency_key="nightly-refresh-2026-12-02",
    )
    failing = submit(system.base_url, alice, kind="demo.fail", payload={"times": 5}, max_attempts=1)
    await until(lambda: api(system, "GET", f"/v1/jobs/{failing}").json()["state"] == "dead")
    await until(lambda: api(system, "GET", f"/v1/jobs/{keyed}").json()["state"] == "succeeded")

    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.get_by_role("link", name="Jobs", exact=True).click()
    await expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    await expect(tab(page, "scheduled")).to_have_text("Scheduled 1")
    await expect(tab(page, "dead")).to_have_text("Dead 1")
    await expect(tab(page, "succeeded")).to_have_text("Succeeded 1")
    await expect(tab(page, "all")).to_have_text("All 3")

    await tab(page, "dead").click()
    await expect(tab(page, "dead")).to_have_attribute("aria-pressed", "true")
    rows = page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job-id", str(failing))
    await expect(rows.first).to_contain_text("RuntimeError: demo.fail")
    assert "state=dead" in page.url  # the view is in the address

    await tab(page, "all").click()
    await page.get_by_label("Search").fill("nightly-refresh-2026-12-02")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job-id", str(keyed))
    await page.get_by_label("Search").fill('"seconds": 0.01')  # text inside the payload
    await page.get_by_role("button", name="Apply").click()
    await expect(rows.first).to_have_attribute("data-job-id", str(keyed))
    await page.get_by_label("Search").fill(f"#{later}")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job-id", str(later))

    await page.get_by_label("Search").fill("")
    await page.get_by_label("Kind").select_option("demo.fail")
    await page.get_by_role("button", name="Apply").click()
    await expect(tab(page, "all")).to_have_text("All 1")
    await expect(rows).to_have_count(1)
    await page.get_by_label("Kind").select_option("")
    await page.get_by_label("Queue").fill("browse")  # no worker takes it: the jobs stay
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)

    # live: a job submitted now shows without a reload, and the counts follow
    await page.evaluate("window.sameDocument = true")
    fresh = submit(system.base_url, alice, kind="demo.noop", delay_s=3600, queue="browse")
    await expect(page.locator(f'tr[data-job-id="{fresh}"]')).to_be_visible(timeout=15_000)
    await expect(tab(page, "scheduled")).to_have_text("Scheduled 2")
    assert await page.evaluate("window.sameDocument") is True


async def test_a_user_sees_only_their_jobs_and_no_delete(page: Page, system: System):
    mine = submit(system.base_url, system.keys["alice"], kind="demo.noop", delay_s=3600)
    submit(system.base_url, system.keys["bob"], kind="demo.noop", delay_s=3600)
    await sign_in(page, system.base_url, system.keys["alice"], "key:alice (user)")
    await page.goto(f"{system.base_url}/#/jobs")
    rows = page.locator("table.jobs tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-job-id", str(mine))
    await expect(page.get_by_label("Owner")).to_have_count(0)
    await page.get_by_label(f"Select job {mine}").check()
    await expect(page.get_by_role("button", name="Cancel selected")).to_be_visible()
    await expect(page.get_by_role("button", name="Delete selected")).to_have_count(0)


async def test_bulk_retry_of_500_dead_jobs_from_the_dead_tab(page: Page, system: System):
    body = {
        "jobs": [
            {"kind": "demo.fail", "payload": {"times": 1}, "max_attempts": 1} for _ in range(500)
        ]
    }
    ids = api(system, "POST", "/v1/jobs/batch", json=body).json()["ids"]

    def dead() -> int:
        counts = api(system, "GET", "/v1/jobs/counts?kind=demo.fail").json()["counts"]
        return next(c["count"] for c in counts if c["state"] == "dead")

    await until(lambda: dead() == 500, timeout=120)
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.goto(f"{system.base_url}/#/jobs?state=dead&kind=demo.fail&limit=500")
    await expect(page.locator("table.jobs tbody tr")).to_have_count(500)
    await expect(tab(page, "dead")).to_have_text("Dead 500")
    await page.get_by_label("Select every job shown").check()
    await expect(page.locator(".selection-count")).to_have_text("500 selected")
    await page.get_by_role("button", name="Retry selected").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Retry 500 selected jobs?")
    await dialog.get_by_role("button", name="Retry 500").click()
    await expect(page.locator("#notice")).to_contain_text("500 jobs queued again.")

    def succeeded() -> int:
        counts = api(system, "GET", "/v1/jobs/counts?kind=demo.fail").json()["counts"]
        return next(c["count"] for c in counts if c["state"] == "succeeded")

    await until(lambda: succeeded() == 500, timeout=120)  # demo.fail times=1: the replay passes
    job = api(system, "GET", f"/v1/jobs/{ids[0]}").json()
    assert (job["state"], job["attempt"]) == ("succeeded", 2)
    await expect(tab(page, "succeeded")).to_have_text("Succeeded 500", timeout=15_000)


async def test_bulk_cancel_then_an_audited_delete(page: Page, system: System):
    alice = system.keys["alice"]
    held = [
        submit(system.base_url, alice, kind="demo.noop", delay_s=3600, queue="tidy")
        for _ in range(3)
    ]
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.goto(f"{system.base_url}/#/jobs?queue=tidy")
    await expect(page.locator("table.jobs tbody tr")).to_have_count(3)
    for job_id in held[:2]:
        await page.get_by_label(f"Select job {job_id}").check()
    await page.get_by_role("button", name="Cancel selected").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel 2").click()
    await expect(page.locator("#notice")).to_contain_text("2 jobs cancelled.")
    for job_id in held[:2]:
        assert api(system, "GET", f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    assert api(system, "GET", f"/v1/jobs/{held[2]}").json()["state"] == "queued"

    await page.get_by_label("Select every job shown").check()
    await page.get_by_role("button", name="Delete selected").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("recorded in the audit log")
    await dialog.get_by_role("button", name="Delete 3").click()
    await expect(page.locator("#notice")).to_contain_text(
        "2 jobs deleted; 1 left as they were (only finished jobs are deleted: cancel it first)."
    )
    await expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    for job_id in held[:2]:
        r = httpx.get(f"{system.base_url}/v1/jobs/{job_id}", headers=system.auth("root"))
        assert r.status_code == 404
    [event] = api(system, "GET", "/v1/audit").json()["events"]
    assert (event["actor"], event["action"], event["data"]["ids"]) == (
        "key:root",
        "jobs.deleted",
        sorted(held[:2]),
    )


HIDE = """hidden => {
    Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
    Object.defineProperty(document, "visibilityState",
        { value: hidden ? "hidden" : "visible", configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_hidden_tabs_let_their_streams_go_so_an_eighth_tab_still_loads(
    browser: Browser, system: System
):
    """Chromium keeps six connections per host over every tab of a profile; a job page's
    stream holds one while it is open. Seven job pages followed in turn, each hidden before
    the next opens (as tabs are), leave room for an eighth page; shown again, a page
    resumes its stream and shows what changed meanwhile."""
    root = system.keys["root"]
    held = [submit(system.base_url, root, kind="demo.noop", delay_s=3600) for _ in range(7)]
    context = await browser.new_context()
    errors: list[str] = []
    tabs = []
    try:
        for job_id in held:
            tab_page = await context.new_page()
            tab_page.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(tab_page, system.base_url, root, "key:root (admin)")
            await tab_page.goto(f"{system.base_url}/#/jobs/{job_id}")
            await expect(tab_page.locator(".live-status")).to_have_text("Live")
            await tab_page.evaluate(HIDE, True)
            tabs.append(tab_page)
        last = await context.new_page()
        await sign_in(last, system.base_url, root, "key:root (admin)")
        await last.goto(f"{system.base_url}/#/jobs")
        await expect(last.locator("table.jobs tbody tr")).to_have_count(7)

        first = tabs[0]
        api(system, "POST", f"/v1/jobs/{held[0]}/cancel")
        await first.evaluate(HIDE, False)
        await expect(first.locator(".title-row .badge")).to_have_text("cancelled")
    finally:
        await context.close()
    assert errors == []
