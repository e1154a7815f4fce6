"""The dashboard in a real headless Chromium against a real `conveyor api` and `conveyor
worker`: what a person sees and does, checked in the page and through the API."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.browser.support import sign_in, submit
from tests.processes import System

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def api_get(system: System, path: str, who: str = "root") -> dict:
    r = httpx.get(system.base_url + path, headers=system.auth(who), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_progress_bar_advances_to_done_without_a_reload(page: Page, system: System):
    await sign_in(page, system.base_url, system.keys["alice"], "key:alice (user)")
    await expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    await page.get_by_role("link", name="Active jobs").click()
    await expect(page.get_by_text("No active jobs")).to_be_visible()
    await page.evaluate("window.sameDocument = true")  # gone if the page reloads

    job_id = submit(
        system.base_url,
        system.keys["alice"],
        kind="demo.progress",
        payload={"steps": 8, "interval_s": 0.4},
    )
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row).to_be_visible()
    await page.wait_for_function(  # seen part-way: the bar moves while the job runs
        """id => {
            const bar = document.querySelector(`tr[data-job-id="${id}"] progress`);
            return bar && bar.value > 0 && bar.value < 100;
        }""",
        arg=job_id,
    )
    await expect(row).to_have_attribute("data-state", "succeeded", timeout=15_000)
    await expect(row.locator("progress")).to_have_attribute("value", "100")
    await expect(row).to_contain_text("succeeded")
    assert await page.evaluate("window.sameDocument") is True
    assert api_get(system, f"/v1/jobs/{job_id}", "alice")["state"] == "succeeded"


async def test_cancel_a_running_job_from_its_page(page: Page, system: System):
    await sign_in(page, system.base_url, system.keys["alice"], "key:alice (user)")
    job_id = submit(
        system.base_url, system.keys["alice"], kind="demo.sleep", payload={"seconds": 60}
    )
    await page.goto(f"{system.base_url}/#/jobs/{job_id}")
    badge = page.locator(".title-row .badge")
    await expect(badge).to_have_text("running")
    await expect(page.get_by_role("heading", name="Payload")).to_be_visible()
    await page.get_by_role("button", name="Cancel job").click()
    await expect(badge).to_have_text("cancelled", timeout=15_000)  # within two heartbeats
    await expect(page.get_by_role("button", name="Retry job")).to_be_visible()
    await expect(page.locator("ol.timeline")).to_contain_text("cancel")
    assert api_get(system, f"/v1/jobs/{job_id}", "alice")["state"] == "cancelled"


async def test_retry_dead_jobs_one_and_all_matching(page: Page, system: System):
    alice = system.keys["alice"]
    first = submit(system.base_url, alice, kind="demo.fail", payload={"times": 1}, max_attempts=1)
    second = submit(system.base_url, alice, kind="demo.fail", payload={"times": 1}, max_attempts=1)
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.goto(f"{system.base_url}/#/jobs/{second}")
    await expect(page.locator(".title-row .badge")).to_have_text("dead", timeout=15_000)
    await expect(page.locator("ol.errors")).to_contain_text("Attempt 1")
    await page.get_by_role("link", name="Dead letters").click()
    await page.get_by_label("Kind").select_option("demo.fail")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(f'tr[data-job-id="{first}"]')).to_be_visible()

    await page.get_by_role("button", name=f"Retry job {first}").click()
    await expect(page.locator(f'tr[data-job-id="{first}"]')).to_have_count(0)
    await page.get_by_role("button", name="Retry all matching…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Retry 1 job matching this filter?")
    await dialog.get_by_role("button", name="Retry 1").click()
    await expect(page.locator("#notice")).to_contain_text("1 job is queued again")
    # demo.fail with times=1 fails only its first attempt: replayed, each now succeeds
    for job_id in (first, second):
        await page.goto(f"{system.base_url}/#/jobs/{job_id}")
        await expect(page.locator(".title-row .badge")).to_have_text("succeeded", timeout=15_000)
        job = api_get(system, f"/v1/jobs/{job_id}")
        assert (job["state"], job["attempt"]) == ("succeeded", 2)


async def test_toggle_a_schedule_and_see_the_servers_cron_message(page: Page, system: System):
    body = {"name": "nightly", "cron": "0 3 * * *", "kind": "demo.noop"}
    r = httpx.post(system.base_url + "/v1/schedules", json=body, headers=system.auth("root"))
    assert r.status_code == 201, r.text
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    await page.get_by_role("link", name="Schedules").click()
    row = page.locator('tr[data-schedule="nightly"]')
    await expect(row.locator(".enabled-cell")).to_have_text("yes")

    await row.get_by_role("button", name="Disable nightly").click()
    await expect(row.locator(".enabled-cell")).to_have_text("no")
    assert api_get(system, "/v1/schedules/nightly")["enabled"] is False
    await row.get_by_role("button", name="Enable nightly").click()
    await expect(row.locator(".enabled-cell")).to_have_text("yes")
    assert api_get(system, "/v1/schedules/nightly")["enabled"] is True

    cron = row.get_by_label("Cron expression of nightly")
    await cron.fill("61 * * * *")
    await row.get_by_role("button", name="Save").click()
    await expect(row.get_by_role("alert")).to_have_text(re.compile(r"\S"))  # the server's words
    assert api_get(system, "/v1/schedules/nightly")["cron"] == "0 3 * * *"
    await cron.fill("*/5 * * * *")
    await row.get_by_role("button", name="Save").click()
    await expect(row.get_by_role("alert")).to_be_hidden()
    assert api_get(system, "/v1/schedules/nightly")["cron"] == "*/5 * * * *"


async def test_a_phone_sized_window_scrolls_no_page_sideways(page: Page, system: System):
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, system.base_url, system.keys["root"], "key:root (admin)")
    submit(system.base_url, system.keys["alice"], kind="demo.sleep", payload={"seconds": 30})
    for section, ready in (
        ("#/", "Workers"),
        ("#/jobs", "Jobs"),
        ("#/active", "Active jobs"),
        ("#/queues", "Queues"),
        ("#/dead", "Dead letters"),
        ("#/schedules", "Schedules"),
    ):
        await page.goto(f"{system.base_url}/{section}")
        await expect(page.get_by_role("heading", name=ready, exact=True)).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        wide = await page.evaluate(  # what reaches past the screen, to say in a failure
            """() => [...document.querySelectorAll("body *")]
                .filter((e) => e.getBoundingClientRect().right > 391 && !e.closest(".table-wrap"))
                .slice(0, 3).map((e) => e.tagName + "." + e.className)"""
        )
        assert width <= 390, f"{section} is {width}px wide: {wide}"
        # a wide table scrolls inside its own box, which stays on the screen (in its card):
        # every column can be scrolled to, none is cut off
        boxes = await page.evaluate(
            """() => [...document.querySelectorAll(".table-wrap")].map((w) => {
                const r = w.getBoundingClientRect(), card = w.closest(".card");
                return {
                    left: r.left, right: r.right,
                    cardRight: card ? card.getBoundingClientRect().right : 390,
                    reach: w.scrollWidth, table: w.querySelector("table").offsetWidth,
                    scrolls: getComputedStyle(w).overflowX === "auto",
                };
            })"""
        )
        for box in boxes:
            assert box["left"] >= 0 and box["right"] <= min(390, box["cardRight"]), (section, box)
            assert box["scrolls"] and box["reach"] >= box["table"], (section, box)


async def finish(system: System, kind: str, payload: dict, who: str = "root") -> dict:
    """Submit through the API and poll it until the real worker has run the job."""
    job_id = submit(system.base_url, system.keys[who], kind=kind, payload=payload)
    for _ in range(600):  # polled through the API, as a frontend would
        job = api_get(system, f"/v1/jobs/{job_id}", who)
        if job["state"] in ("succeeded", "dead"):
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "succeeded", job["errors"]
    return {**job["result"], "job_id": job_id}


GRID = {"fast": {"start": 5, "stop": 30, "step": 5}, "slow": {"start": 30, "stop": 120, "step": 30}}


@pytest_asyncio.fixture(loop_scope="module")
async def research(system: System) -> dict:
    """Research the real worker ran from an operator's API submissions (shared research is
    an admin's to write), and one optimization of bob's own."""
    await finish(
        system,
        "prices.ingest",
        {"symbols": ["IBM", "MSFT"], "start": "2000-01-01", "end": "2012-12-31"},
    )
    shared = await finish(
        system, "strategy.optimize", {"symbols": ["IBM"], "grid": GRID, "publish": True}
    )
    found = await finish(system, "patterns.analyze", {"symbols": ["IBM"]})
    board = await finish(system, "leaderboard.refresh", {"limit": 10})
    own = await finish(system, "strategy.optimize", {"symbols": ["MSFT"], "grid": GRID}, "bob")
    assert board["entries"] >= 1
    return {"shared": shared, "patterns": found["patterns"], "board": board, "own": own}


async def test_results_show_both_leaderboards_and_any_stored_symbols_prices_with_patterns(
    page: Page, system: System, research: dict
):
    await sign_in(page, system.base_url, system.keys["bob"], "key:bob (user)")
    await page.get_by_role("link", name="Results").click()
    table = page.get_by_role("table", name="Leaderboard")
    await expect(table.locator("tbody tr")).to_have_count(research["board"]["entries"])
    best = research["shared"]["symbols"]["IBM"]["best"]
    await expect(table.locator("tbody tr").first).to_contain_text("IBM")
    await expect(table).to_contain_text(f"fast={best['params']['fast']}")
    mine = page.get_by_role("table", name="Your strategies")
    own = research["own"]["symbols"]["MSFT"]["best"]
    await expect(mine.locator(f'tr[data-strategy-id="{own["strategy_id"]}"]')).to_contain_text(
        "MSFT"
    )

    # the symbols are the stored ones (MSFT was never among them before), not a fixed list
    stored = [s["symbol"] for s in api_get(system, "/v1/symbols", "bob")["symbols"]]
    # The list is filled by its own fetch: wait for it before reading it (CI read it empty).
    listed = page.get_by_label("Symbol").locator("option")
    await expect(listed).to_have_count(len(stored))
    options = await listed.all_text_contents()
    assert options == stored and "MSFT" in options
    first = {s["symbol"]: s["first"][:10] for s in api_get(system, "/v1/symbols", "bob")["symbols"]}
    await page.get_by_label("Symbol").select_option("IBM")
    chart = page.get_by_role("img", name=re.compile(f"^IBM closing prices from {first['IBM']}"))
    await expect(chart).to_be_visible()
    # every pattern found is drawn, in lanes under the line, not the newest 500
    await expect(chart.locator("rect.lane-mark")).to_have_count(research["patterns"])
    assert research["patterns"] > 500
    assert await chart.locator("text.tick").count() >= 8  # several ticks on each axis
    years = await chart.locator("text.tick").all_text_contents()
    assert {"2004", "2008", "2012"} <= set(years)
    await page.get_by_label("Symbol").select_option("MSFT")
    msft = page.get_by_role("img", name=re.compile(f"^MSFT closing prices from {first['MSFT']}"))
    await expect(msft).to_be_visible()
    await expect(page.get_by_text("No pattern detected on MSFT yet")).to_be_visible()


async def test_a_strategy_page_shows_its_samples_curve_drawdown_trades_and_grid(
    page: Page, system: System, research: dict
):
    best = research["shared"]["symbols"]["IBM"]["best"]
    sid = best["strategy_id"]
    curve = api_get(system, f"/v1/strategies/{sid}/curve", "bob")
    await sign_in(page, system.base_url, system.keys["bob"], "key:bob (user)")
    await page.get_by_role("link", name="Results").click()
    await page.get_by_role("table", name="Leaderboard").get_by_role("link", name=f"#{sid}").click()
    await expect(page).to_have_url(re.compile(f"#/strategies/{sid}$"))
    await expect(
        page.get_by_role("heading", name=re.compile("^IBM · ma_crossover"))
    ).to_be_visible()
    metrics = page.get_by_role("table", name="Metrics")
    header = await metrics.locator("thead th").all_text_contents()
    assert header[1:] == ["In sample", "Out of sample", "Buy and hold (out of sample)"]
    sharpe = metrics.locator("tr", has_text="Sharpe")
    cells = await sharpe.locator("td").all_text_contents()
    assert cells[0] == f"{best['in_sample']['sharpe']:.2f}"
    assert cells[1] == f"{best['out_of_sample']['sharpe']:.2f}"

    equity = page.get_by_role("img", name=re.compile(f"^Equity of strategy {sid}"))
    await expect(equity).to_be_visible()
    assert await equity.locator("polyline").count() == 2  # the strategy and buy-and-hold
    name = await equity.get_attribute("aria-label")
    assert f"ends at {curve['equity'][-1]:.3f}" in name
    await expect(
        page.get_by_role("img", name=re.compile(f"^Drawdown of strategy {sid}"))
    ).to_be_visible()
    prices = page.get_by_role("img", name=re.compile(r"^IBM closing prices .* trade entries"))
    entries = len(curve["trades"])
    exits = sum(1 for t in curve["trades"] if t["exit_ts"])
    assert entries > 0
    await expect(prices.locator("text.marker.entry")).to_have_count(entries)
    await expect(prices.locator("text.marker.exit")).to_have_count(exits)
    await expect(page.get_by_role("table", name="Trades").locator("tbody tr")).to_have_count(
        entries
    )

    heat = page.get_by_role("img", name=re.compile(r"^IBM: in-sample sharpe over fast and slow"))
    await expect(heat).to_be_visible()
    grid = research["shared"]["symbols"]["IBM"]["grid"]
    sizes = [len(a["values"]) for a in grid["axes"]]
    await expect(heat.locator("rect.cell")).to_have_count(sizes[0] * sizes[1])
    chosen = heat.locator("rect.cell-best")
    await expect(chosen).to_have_count(1)
    assert "(chosen)" in await chosen.locator("title").text_content()
    # swap the axes: the same cells, transposed
    await page.get_by_label("Across").select_option(label="slow")
    await expect(page.get_by_role("img", name=re.compile("over slow and fast"))).to_be_visible()

    # an optimization's job page draws its grid too, linked to the chosen strategy
    job_id = research["own"]["job_id"]
    await page.goto(f"{system.base_url}/#/jobs/{job_id}")
    heat = page.get_by_role("img", name=re.compile(r"^MSFT: in-sample sharpe"))
    await expect(heat).to_be_visible()
    cells = await heat.locator("rect.cell").evaluate_all("cells => cells.map(c => c.dataset.value)")
    grid = research["own"]["symbols"]["MSFT"]["grid"]
    expected = [v for row in zip(*grid["values"], strict=True) for v in row]  # rows are slow
    assert [float(c) if c else None for c in cells] == expected
    await page.get_by_role("link", name="the chosen strategy").click()
    await expect(
        page.get_by_role("heading", name=re.compile("^MSFT · ma_crossover"))
    ).to_be_visible()

    # a grid that computes for a second: its progress names the symbol and the step, the
    # job page's timeline shows them, and a finished job shows no stale step
    big = {"fast": {"start": 2, "stop": 100}, "slow": {"start": 10, "stop": 250, "step": 2}}
    job_id = (
        await finish(system, "strategy.optimize", {"symbols": ["MSFT", "IBM"], "grid": big}, "bob")
    )["job_id"]
    said = [
        e["data"].get("message") or ""
        for e in api_get(system, f"/v1/jobs/{job_id}/events", "bob")
        if e["type"] == "progress"
    ]
    shape = r"(MSFT \(1|IBM \(2) of 2\), ma_crossover grid: [0-9,]+ of [0-9,]+ parameter sets"
    steps = [m for m in said if re.fullmatch(shape, m)]
    assert steps, said
    step = steps[-1]
    await page.goto(f"{system.base_url}/#/jobs/{job_id}")
    await expect(page.locator("ol.timeline")).to_contain_text(step)
    await expect(page.locator(".progress-text")).to_have_text("100%")


async def test_an_admin_pauses_a_queue_and_edits_its_limit_on_the_queues_page(
    page: Page, system: System
):
    root = system.keys["root"]
    await sign_in(page, system.base_url, root, "key:root (admin)")
    first = submit(system.base_url, root, kind="demo.noop")
    for _ in range(100):  # the worker is up and claiming
        if api_get(system, f"/v1/jobs/{first}")["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    await page.get_by_role("link", name="Queues").click()
    row = page.locator('tr[data-queue="default"]')
    await expect(row).to_be_visible()
    await row.get_by_role("button", name="Pause default").click()
    await expect(row.locator(".queue-state")).to_have_text("paused")
    held = submit(system.base_url, root, kind="demo.noop")
    await asyncio.sleep(2.0)  # several polls and NOTIFYs: nothing is claimed from it
    assert api_get(system, f"/v1/jobs/{held}")["state"] == "queued"
    await expect(row.locator("td").nth(0)).to_have_text("1")  # the count refreshed by itself
    await row.get_by_role("button", name="Resume default").click()
    for _ in range(100):
        if api_get(system, f"/v1/jobs/{held}")["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert api_get(system, f"/v1/jobs/{held}")["state"] == "succeeded"

    limit = page.get_by_label("Concurrency limit of default")
    await limit.fill("lots")
    await row.get_by_role("button", name="Set").click()
    await expect(row.locator(".inline-error")).to_contain_text("concurrency")
    await expect(limit).to_have_attribute("aria-invalid", "true")
    await limit.fill("2")
    await row.get_by_role("button", name="Set").click()
    await expect(page.locator("#notice")).to_contain_text("At most 2 of default's jobs run")
    queues = {q["queue"]: q for q in api_get(system, "/v1/queues")}
    assert (queues["default"]["concurrency"], queues["default"]["paused"]) == (2, False)


async def test_a_dead_jobs_page_says_why_and_its_timeline_ends_once(page: Page, system: System):
    alice = system.keys["alice"]
    job_id = submit(system.base_url, alice, kind="demo.fail", payload={"times": 3}, max_attempts=1)
    for _ in range(100):
        if api_get(system, f"/v1/jobs/{job_id}", "alice")["state"] == "dead":
            break
        await asyncio.sleep(0.1)
    await sign_in(page, system.base_url, alice, "key:alice (user)")
    await page.goto(f"{system.base_url}/#/jobs/{job_id}")
    await expect(page.locator(".title-row .badge")).to_have_text("dead")
    await expect(page.get_by_role("alert")).to_contain_text(
        "No result: the job is dead after 1 attempt, the last with RuntimeError: demo.fail:"
        " failing attempt 1 of the first 3"
    )
    ends = page.locator("ol.timeline li strong", has_text=re.compile(r"^dead$"))
    await expect(ends).to_have_count(1)


async def test_the_api_reference_renders_from_this_server_under_its_csp(page: Page, system: System):
    # The page fixture fails the test on any console error, a CSP refusal among them.
    await page.goto(system.base_url + "/docs")
    await expect(page.get_by_role("heading", name=re.compile("Conveyor"))).to_be_visible()
    await expect(page.get_by_text("/v1/jobs/{job_id}/cancel")).to_be_visible()


async def test_the_page_sets_only_the_attributes_it_knows(page: Page, system: System):
    await page.goto(system.base_url + "/")
    refused = await page.evaluate(
        """async () => {
          const { h } = await import("/dashboard/ui.js");
          const tries = {
            handler_as_text: { onclick: "alert(1)" },
            style: { style: "background: url(x)" },
            srcdoc: { srcdoc: "<script>alert(1)</script>" },
            script_link: { href: "javascript:alert(1)" },
            other_site: { href: "https://evil.test/" },
          };
          const out = {};
          for (const [name, attrs] of Object.entries(tries)) {
            try { h("a", attrs); out[name] = "set"; } catch (e) { out[name] = e.message; }
          }
          const ok = h("a", { href: "#/jobs/1", "data-job-id": 1, "aria-label": "job 1" });
          out.allowed = ok.getAttribute("href") + " " + ok.dataset.jobId;
          return out;
        }"""
    )
    assert refused.pop("allowed") == "#/jobs/1 1"
    assert all(v.startswith("refused") for v in refused.values()), refused
