"""Flow control's cost: a drain with limits and fair share on, beside the same drain without.

    python -m bench.flow_control                  # embedded durable cluster
    BENCH_JOBS=20000 BENCH_REPEATS=3 python -m bench.flow_control

Two `conveyor worker` processes with default options (CONVEYOR_LOG_LEVEL=WARNING) drain
BENCH_JOBS pre-enqueued no-op jobs, timed from spawning them to the last job finished
(start-up included). Two setups, alternated in the same run on fresh copies of one template:
- plain: one owner, no controls;
- controlled: the jobs spread over 10 owners (five at weight 2), the queue limited to 1,000
  running, the kind limited to 1,000 running, 500 per owner and 1,000,000 starts a second:
  every claim takes the queue's and the kind's locks, counts what runs, per owner too, and
  charges the kind's rate window.
No limit binds (two workers hold at most a few hundred jobs): what is measured is the
price of enforcing them. Then the claim's latency (100 jobs, median of 200) with 1 owner,
with 1,000 owners queued, and with 1,000 owners under a per-owner limit of 5 (which reads
the lane's 1,000-row window). pgbench's queue-shaped scripts run first on the same server.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.store import make_template, run_on_server, run_pgbench, start_workers, with_database
from jobs.model import NewJob, RateLimit
from jobs.store import Store

JOBS = int(os.environ.get("BENCH_JOBS", "20000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


async def fresh(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE bench_template')
    await admin.close()
    return with_database(server_url, name)


async def prepare(url: str, controlled: bool) -> None:
    store = await Store.connect(url)
    try:
        if controlled:
            for i in range(5):
                await store.set_share(f"key:owner{i}", 2, by="bench")
            await store.control_queue("default", by="bench", concurrency=1000)
            await store.control_kind(
                "demo.noop",
                by="bench",
                concurrency=1000,
                owner_concurrency=500,
                rate=RateLimit(allowed=1_000_000, period_s=1),
            )
        owners = [f"key:owner{i}" for i in range(10)] if controlled else ["key:owner0"]
        await store.enqueue_many(
            [NewJob(kind="demo.noop", owner=owners[i % len(owners)]) for i in range(JOBS)]
        )
        await store.pool.execute("VACUUM ANALYZE job, job_ready")
        await store.pool.execute("CHECKPOINT")
    finally:
        await store.close()


# Whether any job is left: two probes of the partial indexes on queued and running jobs,
# where counting the succeeded ones read every row (5 ms every 20 ms, on the same 2 cores).
LEFT = (
    "SELECT EXISTS (SELECT 1 FROM job WHERE state = 'queued')"
    " OR EXISTS (SELECT 1 FROM job WHERE state = 'running')"
)


async def drain(url: str) -> float:
    watch = await asyncpg.connect(url)
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "workers.log"
        t = time.perf_counter()
        procs = start_workers(url, 2, log)
        try:
            while await watch.fetchval(LEFT):
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError(log.read_text()[-2000:])
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - t
            done = await watch.fetchval("SELECT count(*) FROM job WHERE state = 'succeeded'")
            assert done == JOBS, f"{done} of {JOBS} jobs succeeded"
            return seconds
        finally:
            await watch.close()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=60)


async def claim_latency(url: str, owners: int, per_owner: int | None = None) -> float:
    """Median milliseconds of claim(100) with JOBS jobs queued over `owners` owners (and
    `per_owner`: the kind limited to that many of one owner's running)."""
    store = await Store.connect(url)
    try:
        if per_owner is not None:
            await store.control_kind("demo.noop", by="bench", owner_concurrency=per_owner)
        await store.enqueue_many(
            [NewJob(kind="demo.noop", owner=f"key:o{i % owners}") for i in range(JOBS)]
        )
        await store.pool.execute("VACUUM ANALYZE job, job_ready")
        times = []
        # under the limit, at most owners × per_owner can run: claim less than that
        room = JOBS if per_owner is None else min(JOBS, owners * per_owner * 4 // 5)
        for _ in range(min(200, room // 100)):
            t = time.perf_counter()
            claimed = await store.claim(["default"], 100, "bench", 30)
            times.append(time.perf_counter() - t)
            assert claimed
        return statistics.median(times) * 1000
    finally:
        await store.close()


async def main(server_url: str) -> None:
    run_pgbench(server_url, seconds=10, clients=(1, 2))  # prints its figures
    await make_template(server_url)
    rates: dict[str, list[float]] = {"plain": [], "controlled": []}
    for _ in range(REPEATS):
        for setup in ("plain", "controlled"):
            url = await fresh(server_url, "flow")
            await prepare(url, setup == "controlled")
            seconds = await drain(url)
            rates[setup].append(JOBS / seconds)
            print(json.dumps({"setup": setup, "jobs_per_s": round(JOBS / seconds)}), flush=True)
    plain, controlled = (statistics.median(rates[k]) for k in ("plain", "controlled"))
    print(json.dumps({"figure": "controlled / plain", "ratio": round(controlled / plain, 2)}))
    for owners, per_owner in ((1, None), (1000, None), (1000, 5)):
        url = await fresh(server_url, "flow_claims")
        ms = await claim_latency(url, owners, per_owner)
        figure = {"figure": "claim(100) median ms", "owners": owners, "per_owner": per_owner}
        print(json.dumps({**figure, "ms": round(ms, 2)}))
    print(
        f"\n| setup | jobs/s (median of {REPEATS}) |\n|---|---:|\n"
        f"| plain | {plain:,.0f} |\n| controlled | {controlled:,.0f} |\n"
        f"| ratio | {controlled / plain:.2f} |"
    )


if __name__ == "__main__":
    run_on_server(main)
