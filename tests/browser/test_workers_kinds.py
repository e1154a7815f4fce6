"""The Workers pages and the Kinds catalogue in a real headless Chromium against a real
`conveyor api` and `conveyor worker`: what an operator sees of the workers and the jobs they
hold, a kind's schema and figures, and a job submitted from the form the schema generates."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page, expect

from jobs.metrics import MinuteCounts, minute_of
from jobs.store import Store
from tests.browser.support import sign_in, submit
from tests.processes import System

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def api_get(system: System, path: str, who: str = "root") -> dict:
    r = httpx.get(system.base_url + path, headers=system.auth(who), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


async def the_worker(system: System) -> dict:
    for _ in range(100):
        workers = api_get(system, "/v1/workers")
        if workers:
            return workers[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the system's worker never registered")


async def test_the_workers_pages_show_the_worker_and_the_job_it_runs(page: Page, system: System):
    worker = await the_worker(system)
    job_id = submit(
        system.base_url, system.keys["alice"], kind="demo.sleep", payload={"seconds": 60}
    )
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.get_by_role("link", name="Workers", exact=True).click()
    await expect(page.get_by_role("heading", name="Workers", exact=True)).to_be_visible()
    row = page.locator(f'tr[data-worker-id="{worker["id"]}"]')
    await expect(row).to_contain_text(f"{worker['host']} / {worker['pid']}")
    await expect(row).to_contain_text(worker["version"])
    await expect(row).to_contain_text("1 / 4", timeout=10_000)  # the sleep, of its 4 slots
    await expect(page.locator("tbody tr")).to_have_count(1)

    await row.get_by_role("link", name=worker["id"]).click()
    assert page.url.endswith("#/workers/" + quote(worker["id"], safe=""))
    held = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(held).to_contain_text("demo.sleep")
    await expect(held).to_contain_text("key:alice")
    await expect(page.locator('tr[data-kind="demo.cpu"]')).to_contain_text("yes")
    await expect(page.get_by_role("link", name="Workers", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    await held.get_by_role("link", name=f"#{job_id}").click()
    await expect(page.locator(".title-row .badge")).to_have_text("running")

    # the overview's workers card links here too; a worker that stops says so
    await page.get_by_role("link", name="Overview").click()
    await page.get_by_role("link", name=worker["id"]).click()
    await expect(page.locator(".jobs-done")).to_have_text(re.compile(r"^\d+$"))
    httpx.post(
        f"{system.base_url}/v1/jobs/{job_id}/cancel", headers=system.auth("alice"), timeout=10
    )
    for _ in range(100):  # stopped at the worker's next heartbeat
        if api_get(system, f"/v1/jobs/{job_id}")["state"] == "cancelled":
            break
        await asyncio.sleep(0.1)
    [proc] = [p for p in system.procs.procs if p.pid == worker["pid"]]
    proc.terminate()  # SIGTERM: it finishes up and removes its row
    await expect(page.get_by_text("This worker is no longer running")).to_be_visible(timeout=20_000)
    await page.get_by_role("link", name="See the live workers").click()
    await expect(page.get_by_text("No worker is running")).to_be_visible()


async def _finished(system: System, rows: list[tuple[str, str, int]]) -> None:
    # The aggregates as a worker's heartbeat adds them: the kinds page reads nothing else.
    # A store of this test's loop (the `store` fixture is another loop's).
    store = await Store.connect(system.procs.url)
    try:
        minute = minute_of((await store.now()).timestamp())
        await store.add_minutes(
            {(minute, "default", kind, outcome): MinuteCounts(n) for kind, outcome, n in rows}
        )
    finally:
        await store.close()


async def test_the_kinds_page_shows_a_kinds_schema_and_figures_and_submits_it(
    page: Page, system: System
):
    await the_worker(system)
    await _finished(system, [("demo.fail", "succeeded", 3), ("demo.fail", "dead", 1)])
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.get_by_role("link", name="Kinds").click()
    fail = page.locator('section[data-kind="demo.fail"]')
    await expect(fail.locator(".success-rate")).to_have_text(
        "75.0% succeeded (3 succeeded, 1 dead, 0 cancelled)"
    )
    card = page.locator('section[data-kind="demo.sleep"]')
    await expect(card.locator(".success-rate")).to_contain_text("no data")
    await expect(card.locator("[data-workers]")).to_have_text("1")
    await expect(card).to_contain_text("no: runs on a worker's event loop")
    await expect(page.locator('section[data-kind="demo.cpu"]')).to_contain_text(
        "yes: runs in a worker's process pool"
    )
    await card.get_by_text("Payload schema (JSON Schema)").click()
    await expect(card.locator("pre.json")).to_contain_text('"seconds"')
    await expect(card.locator("pre.json")).to_contain_text('"maximum": 86400')

    await card.get_by_text("Submit a job").click()
    seconds = card.get_by_label("seconds")
    await expect(seconds).to_have_value("1")  # the schema's default
    await seconds.fill("0.2")
    await card.get_by_label("Queue").fill("default")
    await card.get_by_role("button", name="Submit demo.sleep").click()
    result = card.locator(".submit-result")
    await expect(result).to_contain_text(re.compile(r"Job #\d+ is queued"))
    job_id = int(await result.get_attribute("data-job-id") or 0)
    job = api_get(system, f"/v1/jobs/{job_id}")
    assert (job["kind"], job["payload"], job["queue"]) == (
        "demo.sleep",
        {"seconds": 0.2},
        "default",
    )
    for _ in range(100):
        if api_get(system, f"/v1/jobs/{job_id}")["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert api_get(system, f"/v1/jobs/{job_id}")["state"] == "succeeded"
    await result.get_by_role("link", name=f"Open job #{job_id}").click()
    await expect(page.locator(".title-row .badge")).to_have_text("succeeded")

    # the research kinds' forms: an enum is a select, a list is JSON
    await page.go_back()
    optimize = page.locator('section[data-kind="strategy.optimize"]')
    await optimize.get_by_text("Submit a job").click()
    await expect(optimize.get_by_label("family")).to_have_value("0")  # ma_crossover
    await expect(optimize.get_by_label("symbols")).to_have_attribute("aria-required", "true")
    await expect(optimize.get_by_label("publish")).not_to_be_checked()


async def test_a_user_submits_only_what_it_may_and_sees_the_servers_refusal_inline(
    page: Page, system: System
):
    await sign_in(page, system.base_url, system.keys["alice"], "key:alice (user)")
    await expect(page.get_by_role("link", name="Workers", exact=True)).to_be_hidden()
    await page.goto(f"{system.base_url}/#/workers")
    await expect(page.get_by_text("Workers is for admins")).to_be_visible()

    await page.get_by_role("link", name="Kinds").click()
    board = page.locator('section[data-kind="leaderboard.refresh"]')
    await expect(board.locator(".submit-refusal")).to_contain_text("only an admin may submit")
    await expect(board.get_by_role("form")).to_have_count(0)
    submittable = await page.locator("section[data-kind]:has(form)").evaluate_all(
        "cards => cards.map((c) => c.dataset.kind)"
    )
    kinds = api_get(system, "/v1/kinds", "alice")
    assert submittable == [k["kind"] for k in kinds if k["may_submit"]]
    assert "prices.ingest" not in submittable and "demo.sleep" in submittable

    card = page.locator('section[data-kind="demo.sleep"]')
    await card.get_by_text("Submit a job").click()
    seconds = card.get_by_label("seconds")
    await seconds.fill("100000")  # over the schema's maximum: the server says so
    await card.get_by_role("button", name="Submit demo.sleep").click()
    await expect(card.locator("#f-demo_sleep-seconds-problem")).to_contain_text(
        "less than or equal to 86400"
    )
    await expect(seconds).to_have_attribute("aria-invalid", "true")
    await expect(card.locator(".submit-result")).to_be_empty()

    await seconds.fill("0")
    priority = card.get_by_label("Priority")
    await priority.fill("50")  # outside what a user may (the quota's −10 to 10)
    await card.get_by_role("button", name="Submit demo.sleep").click()
    await expect(card.locator("#f-demo_sleep-job-priority-problem")).to_contain_text(
        "users may submit priorities from -10 to 10, not 50"
    )
    await expect(seconds).not_to_have_attribute("aria-invalid", "true")
    assert api_get(system, "/v1/jobs?kind=demo.sleep", "alice")["jobs"] == []

    await priority.fill("")
    await card.get_by_role("button", name="Submit demo.sleep").click()
    await expect(card.locator(".submit-result")).to_contain_text(re.compile(r"Job #\d+"))
    await expect(priority).not_to_have_attribute("aria-invalid", "true")

    optimize = page.locator('section[data-kind="strategy.optimize"]')
    await optimize.get_by_text("Submit a job").click()
    await optimize.get_by_label("symbols").fill('["IBM"')  # not JSON: said before sending
    await optimize.get_by_role("button", name="Submit strategy.optimize").click()
    await expect(optimize.locator("#f-strategy_optimize-symbols-problem")).to_contain_text(
        "this is not JSON"
    )
