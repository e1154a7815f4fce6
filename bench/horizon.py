"""Drain speed while a long transaction holds back vacuum (the held-horizon benchmark).

    python -m bench.horizon                       # embedded durable cluster
    BENCH_BURSTS=10 BENCH_BURST=20000 python -m bench.horizon
    BENCH_PIN=0 python -m bench.horizon           # the same without the pinned session

Two `conveyor worker` processes (default options, CONVEYOR_LOG_LEVEL=WARNING) run the whole
time. A first burst of no-op jobs is drained with nothing pinned (the baseline); then a
session runs `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM job;` and stays
open while the remaining bursts are enqueued (`Store.enqueue_many`) and drained. Each burst's
rate is jobs ÷ (enqueue call → last job finished). Printed per burst: the rate, its ratio to
the baseline, and the dead tuples the queue's tables hold; first, pgbench's queue-shaped
scripts on the same server (what PostgreSQL itself allows here).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.store import make_template, run_on_server, run_pgbench, start_workers, with_database
from jobs.model import NewJob
from jobs.store import Store

BURST = int(os.environ.get("BENCH_BURST", "20000"))
BURSTS = int(os.environ.get("BENCH_BURSTS", "11"))
PIN = os.environ.get("BENCH_PIN", "1") != "0"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


async def unfinished(conn: asyncpg.Connection, first: int, last: int) -> bool:
    """Whether any of jobs `first`..`last` is not finished yet. Asked every few milliseconds,
    so it reads `job_ready` until no job is queued, and only then the burst's rows by id:
    `job`'s partial indexes hold an entry for every job claimed since the horizon was pinned,
    and probing them took a core by the fifth burst (the benchmark measuring itself)."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM job_ready)"):
        return True
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM job WHERE id BETWEEN $1 AND $2"
            " AND state IN ('queued', 'running'))",
            first,
            last,
        )
    )


async def dead_tuples(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE n_dead_tup > 0 "
        "ORDER BY n_dead_tup DESC LIMIT 4"
    )
    return {r["relname"]: r["n_dead_tup"] for r in rows}


async def main(server_url: str) -> None:
    run_pgbench(server_url, seconds=10, clients=(1, 2))  # prints its figures
    await make_template(server_url)
    admin = await asyncpg.connect(server_url)
    await admin.execute("DROP DATABASE IF EXISTS horizon WITH (FORCE)")
    await admin.execute("CREATE DATABASE horizon TEMPLATE bench_template")
    await admin.close()
    url = with_database(server_url, "horizon")
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "workers.log"
        procs = start_workers(url, WORKERS, log)
        store = await Store.connect(url)
        watch = await asyncpg.connect(url)
        pinned: asyncpg.Connection | None = None
        try:
            await asyncio.sleep(2.0)  # started and idle
            baseline = 0.0
            for burst in range(BURSTS):
                if burst == 1 and PIN:
                    pinned = await asyncpg.connect(url)
                    await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    await pinned.fetchval("SELECT count(*) FROM job")
                jobs = [NewJob(kind="demo.noop") for _ in range(BURST)]
                t = time.perf_counter()
                ids = await store.enqueue_many(jobs)
                while await unfinished(watch, ids[0].id, ids[-1].id):
                    if any(p.poll() is not None for p in procs):
                        raise RuntimeError(log.read_text()[-2000:])
                    await asyncio.sleep(0.01)
                rate = BURST / (time.perf_counter() - t)
                baseline = baseline or rate
                figure = {
                    "burst": burst,
                    "pinned": pinned is not None,
                    "jobs_per_s": round(rate),
                    "ratio": round(rate / baseline, 2),
                    "dead_tuples": await dead_tuples(watch),
                }
                print(json.dumps(figure), flush=True)
        finally:
            if pinned is not None:
                await pinned.close()
            await watch.close()
            await store.close()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)


if __name__ == "__main__":
    run_on_server(main)
