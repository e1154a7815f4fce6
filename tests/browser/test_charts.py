"""The charts page and the overview's chart in a real headless Chromium against a real
`conveyor api` and `conveyor worker`: per-kind figures, queue depth and one kind's charts,
each axis with several ticks; dead jobs marked on the overview."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Page, expect

from jobs.store import Store
from tests.browser.support import sign_in, submit
from tests.processes import System

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def api_get(system: System, path: str, who: str = "root") -> dict:
    r = httpx.get(system.base_url + path, headers=system.auth(who), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


async def until(check, timeout: float = 30.0):
    for _ in range(int(timeout / 0.25)):
        if value := check():
            return value
        await asyncio.sleep(0.25)
    raise AssertionError("still not there")


def kinds(system: System) -> dict[str, dict]:
    return {k["kind"]: k for k in api_get(system, "/v1/stats/kinds?window=1h")["kinds"]}


async def y_ticks(chart) -> list[str]:
    """The y axis' labels (end-anchored, as is only the overview's "(now)" under its x axis)."""
    texts = await chart.locator('text.tick[text-anchor="end"]').all_text_contents()
    return [t for t in texts if not t.endswith("(now)")]


async def test_the_charts_page_shows_kinds_queue_depth_and_one_kinds_charts(
    page: Page, system: System, db_url: str
):
    root = system.keys["root"]
    for _ in range(3):
        submit(system.base_url, root, kind="demo.noop")
    submit(system.base_url, root, kind="demo.fail", payload={"times": 1}, max_attempts=1)
    submit(system.base_url, root, kind="demo.sleep", payload={"seconds": 0.2})
    for _ in range(2):  # no worker serves this queue: they stay queued
        submit(system.base_url, root, kind="demo.noop", queue="later")
    await until(
        lambda: (
            kinds(system).get("demo.fail", {}).get("dead") == 1
            and kinds(system).get("demo.noop", {}).get("succeeded") == 3
            and kinds(system).get("demo.sleep", {}).get("succeeded") == 1
        )
    )
    # The worker samples depth once a minute, and sampled this one before these jobs: take
    # the real counts now and file them five and three minutes back, as samples then would
    # have been. Two minutes apart, they are two runs of the line (two dots) whatever the
    # worker samples next (CI once had a single sample, so a single dot).
    store = await Store.connect(db_url)
    try:
        for minutes in (5, 3):
            back = await store.now() - timedelta(minutes=minutes)
            assert (await store.sample_depth(now=back)).sampled
    finally:
        await store.close()

    await sign_in(page, system.base_url, root, "key:root (admin)")
    await page.get_by_role("link", name="Charts").click()
    fail = page.locator('tr[data-kind="demo.fail"]')
    await expect(fail).to_be_visible()
    await expect(fail.locator("td").nth(1)).to_have_text("1")  # dead
    await expect(fail.locator("td[data-failure-rate]")).to_have_text("100 %")
    noop = page.locator('tr[data-kind="demo.noop"]')
    await expect(noop.locator("td").nth(0)).to_have_text("3")
    await expect(noop.locator("td[data-failure-rate]")).to_have_text("0 %")
    sleep = page.locator('tr[data-kind="demo.sleep"]')
    await expect(sleep.locator("td").nth(7)).to_have_text(re.compile(r"^\d+ ms$"))  # run p95

    depth = page.get_by_role("img", name=re.compile("^Jobs queued per queue over the last hour"))
    await expect(depth).to_be_visible()
    await expect(depth.locator("xpath=..").locator(".legend")).to_contain_text(["later"])
    ticks = await y_ticks(depth)
    assert len(ticks) >= 3 and ticks[:2] == ["0", "1"], ticks
    assert await depth.locator("polyline.line, circle.dot").count() >= 2

    # The busiest kind is charted first; picking another charts it instead.
    await expect(page.locator("#kind-title")).to_have_text("Kind demo.noop")
    await fail.get_by_role("button", name="Chart demo.fail").click()
    await expect(page.locator("#kind-title")).to_have_text("Kind demo.fail")
    times = page.get_by_role("img", name=re.compile("^demo.fail: wait and run p95 per minute"))
    await expect(times).to_be_visible()
    assert len(await y_ticks(times)) >= 3
    failures = page.get_by_role("img", name=re.compile("^demo.fail: failed attempts per minute"))
    await expect(failures.locator("rect.bar.dead")).to_have_count(1)
    assert len(await y_ticks(failures)) >= 3

    await page.get_by_role("button", name="Last day").click()
    await expect(page.get_by_role("button", name="Last day")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(page.get_by_role("img", name=re.compile("over the last day"))).to_be_visible()
    per_hour = page.get_by_role("img", name=re.compile("^demo.fail: failed attempts per hour"))
    await expect(per_hour.locator("rect.bar.dead")).to_have_count(1)
    await expect(fail.locator("td[data-failure-rate]")).to_have_text("100 %")


async def test_the_overview_marks_dead_jobs_and_a_user_has_no_charts(page: Page, system: System):
    alice = system.keys["alice"]
    ok = submit(system.base_url, alice, kind="demo.noop")
    for _ in range(2):
        submit(system.base_url, alice, kind="demo.fail", payload={"times": 1}, max_attempts=1)

    def finished() -> bool:
        points = api_get(system, "/v1/throughput?minutes=15", who="alice")["points"]
        return sum(p["dead"] for p in points) == 2 and sum(p["succeeded"] for p in points) == 1

    await until(finished)
    assert api_get(system, f"/v1/jobs/{ok}", who="alice")["state"] == "succeeded"
    await sign_in(page, system.base_url, alice, "key:alice (user)")
    chart = page.get_by_role("img", name=re.compile("^Jobs finished per minute"))
    await expect(chart).to_be_visible()
    marks = chart.locator("circle.dead-mark")
    await expect(marks.first).to_be_visible()
    dead = [int(d or 0) for d in await marks.evaluate_all("ms => ms.map(m => m.dataset.dead)")]
    assert sum(dead) == 2
    await expect(marks.first.locator("title")).to_have_text(re.compile(r": \d dead$"))
    assert await y_ticks(chart) == ["0", "1", "2", "3", "4"]  # at most 2 a minute: 0..4

    await expect(page.get_by_role("link", name="Charts")).to_be_hidden()
    await page.goto(f"{system.base_url}/#/charts")
    await expect(page.locator("main")).to_contain_text("need an admin's key")


async def test_every_value_axis_has_three_to_six_round_ticks_covering_its_range(
    page: Page, system: System
):
    await page.goto(system.base_url + "/dashboard/")
    worst = await page.evaluate(
        """async () => {
            const { niceTicks } = await import("/dashboard/chart.js");
            let seed = 7;
            const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
            const found = [];
            for (let i = 0; i < 20000; i++) {
                const lo = random() < 0.5 ? 0 : random() * 10 ** (random() * 6 - 3);
                const hi = lo + 10 ** (random() * 8 - 4);
                const ticks = niceTicks(lo, hi, 5);
                const step = ticks[1] - ticks[0];
                const bad = ticks.length < 3 || ticks.length > 6
                    || ticks[0] < lo - step * 1e-9 || ticks[ticks.length - 1] > hi + step * 1e-9
                    || ticks.some((t, k) => k && Math.abs(t - ticks[k - 1] - step) > step * 1e-6);
                if (bad) found.push([lo, hi, ticks]);
            }
            return found.slice(0, 5);
        }"""
    )
    assert worst == []
