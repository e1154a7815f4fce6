"""Real `conveyor worker` processes: drain throughput and pickup latency.

    python -m bench.worker                 # embedded durable cluster
    BENCH_DATABASE_URL=… python -m bench.worker
    BENCH_SCALE=0.1 python -m bench.worker # smaller drain, shorter latency run

Drain: workers start idle, then 50,000 `demo.noop` jobs arrive in one `enqueue_many`; the
clock runs from that commit until the last job is `succeeded`. Pickup latency: one worker,
jobs enqueued one at a time at a steady 200/s for 30 s; latency is `started_at - created_at`
(both on the database's clock: the enqueue's commit to the claim that hands the job to its
handler).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.store import make_template, run_on_server, with_database
from jobs.model import NewJob
from jobs.store import Store

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
WORKER_ARGS = ["--concurrency", "256", "--processes", "0", "--poll", "1s"]


def start_workers(url: str, count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": url, "DB_POOL_MAX": "8"}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "worker", *WORKER_ARGS],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(log_dir / f"worker-{i}.log").open("wb"),
        )
        for i in range(count)
    ]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)


async def fresh(server_url: str, name: str) -> Store:
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE bench_template')
    await admin.close()
    return await Store.connect(with_database(server_url, name))


async def wait_workers(store: Store, count: int) -> None:
    while await store.pool.fetchval("SELECT count(*) FROM worker") < count:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # let them settle into their idle wait


async def drain(server_url: str, processes: int, total: int, log_dir: Path) -> float:
    store = await fresh(server_url, f"bench_worker_drain_{processes}")
    url = with_database(server_url, f"bench_worker_drain_{processes}")
    procs = start_workers(url, processes, log_dir)
    try:
        await wait_workers(store, processes)
        jobs = [NewJob(kind="demo.noop") for _ in range(total)]
        await store.enqueue_many(jobs)
        t = time.perf_counter()
        while (
            await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'succeeded'") < total
        ):
            await asyncio.sleep(0.02)
        return total / (time.perf_counter() - t)
    finally:
        stop(procs)
        await store.close()


async def latency(server_url: str, rate: float, seconds: float, log_dir: Path) -> list[float]:
    store = await fresh(server_url, "bench_worker_latency")
    url = with_database(server_url, "bench_worker_latency")
    procs = start_workers(url, 1, log_dir)
    try:
        await wait_workers(store, 1)
        interval = 1.0 / rate
        start = time.perf_counter()
        sent = 0
        async with store.pool.acquire() as conn:
            while (elapsed := time.perf_counter() - start) < seconds:
                due = int(elapsed / interval) + 1
                while sent < due:
                    await store.enqueue(NewJob(kind="demo.noop"), conn=conn)
                    sent += 1
                await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        while await store.pool.fetchval("SELECT count(*) FROM job WHERE started_at IS NULL"):
            await asyncio.sleep(0.05)
        rows = await store.pool.fetch(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms FROM job"
        )
        return [float(r["ms"]) for r in rows]
    finally:
        stop(procs)
        await store.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(server_url: str) -> None:
    await make_template(server_url)
    total = max(1000, int(50_000 * SCALE))
    with tempfile.TemporaryDirectory() as logs:
        log_dir = Path(logs)
        rates = {}
        for processes in (1, 2):
            rates[processes] = await drain(server_url, processes, total, log_dir)
            print(
                json.dumps(
                    {
                        "figure": f"worker drain, {processes} process(es)",
                        "jobs": total,
                        "jobs_per_s": round(rates[processes]),
                    }
                ),
                flush=True,
            )
        ms = await latency(server_url, 200.0, max(5.0, 30.0 * SCALE), log_dir)
    figures = {p: round(pct(ms, p), 2) for p in (50, 95, 99)}
    print(
        json.dumps(
            {
                "figure": "pickup latency ms, 200 jobs/s, 1 worker",
                "jobs": len(ms),
                "p50": figures[50],
                "p95": figures[95],
                "p99": figures[99],
                "mean": round(statistics.fmean(ms), 2),
                "max": round(max(ms), 2),
            }
        )
    )
    print("\n| figure | value |\n|---|---:|")
    for processes, rate in rates.items():
        print(f"| drain {total:,} demo.noop, {processes} worker process(es) | {rate:,.0f} jobs/s |")
    print(
        f"| pickup latency p50 / p95 / p99 ({len(ms):,} jobs at 200/s) | "
        f"{figures[50]} / {figures[95]} / {figures[99]} ms |"
    )


if __name__ == "__main__":
    run_on_server(main)
