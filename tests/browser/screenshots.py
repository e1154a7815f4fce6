"""`make screenshots`: start Conveyor (an embedded Postgres, or TEST_DATABASE_URL's server),
make some jobs, and capture the dashboard into docs/screenshots/ at 1280 px (and the
overview at 390 px, to look at; that one is not committed)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Page, async_playwright, expect

from conveyor.embedded import EmbeddedPostgres
from jobs.migrate import upgrade
from stores.keys import create_key
from tests.browser.support import launch, sign_in, submit
from tests.processes import Processes
from tests.support import with_database

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = (
    "overview.png",
    "jobs.png",
    "job.png",
    "charts.png",
    "kinds.png",
    "workers.png",
    "results.png",
    "strategy.png",
)


async def make_jobs(base_url: str, key: str) -> int:
    """A mix a dashboard shows: finished, failed, running with progress, queued. Returns a
    job with a failed attempt and a result, for the job page."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as client:
        batch = [{"kind": "demo.noop"}] * 40 + [{"kind": "demo.noop", "queue": "prices"}] * 12
        await client.post("/v1/jobs/batch", json={"jobs": batch})
        for _ in range(3):
            await client.post(
                "/v1/jobs",
                json={
                    "kind": "demo.fail",
                    "payload": {"times": 5},
                    "max_attempts": 2,
                    "queue": "research",
                },
            )
        retried = submit(base_url, key, kind="demo.fail", payload={"times": 1}, max_attempts=3)
        for steps in (40, 60):
            await client.post(
                "/v1/jobs",
                json={"kind": "demo.progress", "payload": {"steps": steps, "interval_s": 0.5}},
            )
        await client.post(
            "/v1/jobs",
            json={
                "kind": "demo.sleep",
                "payload": {"seconds": 120},
                "queue": "research",
                "delay_s": 600,
            },
        )
        await client.post(
            "/v1/schedules",
            json={
                "name": "nightly-ingest",
                "cron": "30 21 * * 1-5",
                "timezone": "America/New_York",
                "kind": "demo.noop",
            },
        )
        return retried


async def make_research(base_url: str, key: str) -> int:
    """Real research results: IBM and MSFT prices, an optimization, a discovery, patterns, a
    leaderboard; the id of the optimization's chosen out-of-sample run."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as client:

        async def finish(kind: str, payload: dict[str, object]) -> dict[str, Any]:
            r = await client.post("/v1/jobs", json={"kind": kind, "payload": payload})
            job_id = r.json()["id"]
            for _ in range(1200):
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                if job["state"] in ("succeeded", "dead"):
                    break
                await asyncio.sleep(0.1)
            return dict(job.get("result") or {})

        symbols = ["IBM", "MSFT"]
        await finish("prices.ingest", {"symbols": symbols, "start": "2009-01-01"})
        grid = {
            "fast": {"start": 5, "stop": 50, "step": 5},
            "slow": {"start": 20, "stop": 200, "step": 10},
        }
        optimized = await finish(
            "strategy.optimize", {"symbols": ["IBM"], "grid": grid, "publish": True}
        )
        await finish(
            "strategy.discover", {"symbols": symbols, "budget": 80, "seed": 1, "publish": True}
        )
        await finish("patterns.analyze", {"symbols": symbols, "since": "2012-06-01"})
        await finish("leaderboard.refresh", {"limit": 10})
        return int(optimized["symbols"]["IBM"]["best"]["strategy_id"])


async def capture(page: Page, base_url: str, key: str, job_id: int, strategy_id: int) -> None:
    await sign_in(page, base_url, key, "root")
    await expect(page.get_by_role("heading", name="Workers")).to_be_visible()
    await expect(page.locator("#view progress, #view table").first).to_be_visible()
    await expect(page.locator("rect.bar").first).to_be_visible(timeout=15_000)  # jobs finished
    await page.screenshot(path=OUT / "overview.png", full_page=True)
    await page.goto(f"{base_url}/#/jobs")
    await expect(page.locator("table.jobs tbody tr").first).to_be_visible()
    await page.get_by_label(f"Select job {job_id}").check()
    await page.screenshot(path=OUT / "jobs.png", full_page=True)
    await page.goto(f"{base_url}/#/jobs/{job_id}")
    await expect(page.locator(".title-row .badge")).to_have_text("succeeded", timeout=15_000)
    # The traceback stays folded: its file paths are this machine's, not for the docs.
    await page.screenshot(path=OUT / "job.png", full_page=True)
    await page.goto(f"{base_url}/#/charts")
    await page.get_by_role("button", name="Chart demo.fail").click(timeout=30_000)
    timings = page.get_by_role("img", name=re.compile("^demo.fail: wait and run"))
    await expect(timings).to_be_visible()
    await page.screenshot(path=OUT / "charts.png", full_page=True)
    await page.goto(f"{base_url}/#/kinds")
    await expect(page.locator('section[data-kind="demo.sleep"]')).to_be_visible()
    await page.screenshot(path=OUT / "kinds.png", full_page=False)
    await page.goto(f"{base_url}/#/workers")
    await page.locator("#view table a").first.click()
    await expect(page.locator("#view h1")).to_contain_text("Worker")
    await page.screenshot(path=OUT / "workers.png", full_page=True)
    await page.goto(f"{base_url}/#/results")
    await page.get_by_label("Symbol").select_option("IBM")
    await expect(page.get_by_role("img", name="IBM closing prices", exact=False)).to_be_visible()
    await page.screenshot(path=OUT / "results.png", full_page=True)
    await page.goto(f"{base_url}/#/strategies/{strategy_id}")
    await expect(page.get_by_role("img", name="Equity of strategy", exact=False)).to_be_visible()
    await expect(page.get_by_role("img", name="in-sample sharpe", exact=False)).to_be_visible()
    await page.screenshot(path=OUT / "strategy.png", full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{base_url}/#/")
    await expect(page.get_by_role("heading", name="Workers")).to_be_visible()
    for name, section in (("overview", "#/"), ("jobs", "#/jobs"), ("queues", "#/queues")):
        await page.goto(f"{base_url}/{section}")
        await expect(page.locator("#view table").first).to_be_visible()
        narrow = Path(tempfile.gettempdir()) / f"conveyor-{name}-390.png"
        await page.screenshot(path=narrow, full_page=True)
        print(f"narrow {name}: {narrow}")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    server = os.environ.get("TEST_DATABASE_URL")
    pg = None if server else EmbeddedPostgres(durable=False)
    try:
        server = server or pg.start()  # type: ignore[union-attr]
        name = f"screens_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(server)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server, name)
        await asyncio.to_thread(upgrade, url)  # it runs its own event loop
        conn = await asyncpg.connect(url)
        key = await create_key(conn, "root", "admin")
        await conn.close()
        with tempfile.TemporaryDirectory() as logs:
            procs = Processes(url, Path(logs))
            try:
                base_url = procs.start_api()
                procs.start_worker("--concurrency", "4", "--processes", "0")
                procs.start_worker(
                    "--concurrency", "2", "--processes", "0", "--queues", "research,prices"
                )
                strategy_id = await make_research(base_url, key)
                job_id = await make_jobs(base_url, key)
                async with async_playwright() as p:
                    browser = await launch(p)
                    page = await browser.new_page(viewport={"width": 1280, "height": 800})
                    await capture(page, base_url, key, job_id, strategy_id)
                    await browser.close()
            finally:
                procs.stop_all()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    finally:
        if pg is not None:
            pg.destroy()
    print(f"wrote {', '.join(str(OUT / n) for n in SHOTS)}")


if __name__ == "__main__":
    asyncio.run(main())
