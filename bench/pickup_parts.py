"""Where a pickup's milliseconds go: `bench.peers`' pickup latency, taken apart.

    python -m bench.pickup_parts                              # 200 and 2,000 jobs/s, 10 s
    BENCH_RATES=200 BENCH_SECONDS=15 python -m bench.pickup_parts
    BENCH_RATES=1000 BENCH_PIN=1 python -m bench.pickup_parts  # as the soak: vacuum held back

One store (`Store.connect` with its defaults) enqueues no-op jobs at a steady rate, open
loop, as `bench.peers` does; one worker (`conveyor worker`'s runtime at C = 10, started by
this module with `--worker`) runs a kind that records when it starts. The worker also
records when each claim was sent and came back with which jobs, and when each NOTIFY reached
its fetcher. So each job's pickup splits, on the machine's monotonic clock, into:

- enqueue: the call until it returns (the insert and its commit's flush);
- to claim: the call until the claim that took the job was sent (the NOTIFY comes at the
  insert's commit, so this is the enqueue plus the way to the fetcher);
- claim: that claim's round trip (its statement and its flush);
- to start: the claim's return until the handler starts (the worker's own Python).

With BENCH_PIN=1 a REPEATABLE READ session reads `job` before the first enqueue and stays
open to the end, as in `bench.soak`. Printed with each process's CPU over the run (from
/proc, in % of one core): the sender, the worker, and PostgreSQL's processes together.
Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.peers import pct, steady
from bench.store import make_template, run_on_server, with_database
from jobs.model import NewJob
from jobs.store import Store

RATES = [float(r) for r in os.environ.get("BENCH_RATES", "200,2000").split(",")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
PIN = os.environ.get("BENCH_PIN", "0") == "1"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue  # exited meanwhile
    return total


# -- the worker's side ---------------------------------------------------------------------


class Stamp(BaseModel):
    t: float


def run_recording_worker(out: Path) -> None:
    """`conveyor worker`'s runtime, its claims and NOTIFYs timed, until SIGTERM."""
    from jobs.logging import configure_logging
    from worker.fetcher import Fetcher
    from worker.registry import default_registry
    from worker.runtime import run_worker
    from worker.settings import WorkerSettings

    starts: dict[int, float] = {}
    claims: list[tuple[float, float, list[int]]] = []
    notes: list[float] = []

    async def stamp(ctx: Any, payload: Stamp) -> None:
        starts[ctx.job_id] = time.monotonic()

    # Wrapped on the class, in this process only: the runtime makes its own store.
    claim = Store.claim

    async def timed_claim(self: Store, *args: Any, **kwargs: Any) -> Any:
        sent = time.monotonic()
        jobs = await claim(self, *args, **kwargs)
        claims.append((sent, time.monotonic(), [j.id for j in jobs]))
        return jobs

    notified = Fetcher.notified

    def timed_notified(self: Fetcher) -> None:
        notes.append(time.monotonic())
        notified(self)

    Store.claim = timed_claim  # type: ignore[method-assign]
    Fetcher.notified = timed_notified  # type: ignore[method-assign]
    configure_logging()
    registry = default_registry()
    registry.register("bench.stamp", stamp, Stamp)
    try:
        run_worker(
            os.environ["DATABASE_URL"], registry, WorkerSettings(concurrency=10, processes=0)
        )
    finally:
        out.write_text(json.dumps({"starts": starts, "claims": claims, "notes": notes}))


# -- the sender's side ---------------------------------------------------------------------


async def one_rate(server_url: str, rate: float, log_dir: Path) -> None:
    import asyncpg

    name = "pickup_parts"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE bench_template')
    await admin.close()
    url = with_database(server_url, name)
    record = log_dir / "worker.json"
    env = {**os.environ, "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.pickup_parts", "--worker", str(record)],
        env=env,
        stderr=(log_dir / "worker.log").open("ab"),
    )
    try:
        await asyncio.sleep(3.0)  # started and idle, listening
        pinned = await asyncpg.connect(url) if PIN else None
        if pinned is not None:
            await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            await pinned.fetchval("SELECT count(*) FROM job")
        store = await Store.connect(url)
        sent: dict[int, tuple[float, float]] = {}

        async def send() -> None:
            called = time.monotonic()
            done = await store.enqueue(NewJob(kind="bench.stamp", payload={"t": called}))
            sent[done.id] = (called, time.monotonic())

        cpu0 = (cpu_seconds(os.getpid()), cpu_seconds(worker.pid), postgres_cpu())
        t0 = time.perf_counter()
        await steady(rate, SECONDS, send)
        elapsed = time.perf_counter() - t0
        cpu1 = (cpu_seconds(os.getpid()), cpu_seconds(worker.pid), postgres_cpu())
        await asyncio.sleep(1.0)
        await store.close()
        if pinned is not None:
            await pinned.close()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    got = json.loads(record.read_text())
    starts = {int(k): v for k, v in got["starts"].items()}
    claim_of = {i: (c0, c1) for c0, c1, ids in got["claims"] for i in ids}
    notes = sorted(got["notes"])
    parts: dict[str, list[float]] = {
        k: [] for k in ("total", "enqueue", "to claim", "claim", "to start", "to NOTIFY")
    }
    for job_id, (called, returned) in sent.items():
        if job_id not in starts or job_id not in claim_of:
            continue
        c0, c1 = claim_of[job_id]
        parts["total"].append(starts[job_id] - called)
        parts["enqueue"].append(returned - called)
        parts["to claim"].append(c0 - called)
        parts["claim"].append(c1 - c0)
        parts["to start"].append(starts[job_id] - c1)
        k = bisect.bisect_left(notes, called)
        if k < len(notes):
            parts["to NOTIFY"].append(notes[k] - called)
    cpu = {
        who: round((b - a) / elapsed * 100)
        for who, a, b in zip(("sender", "worker", "postgres"), cpu0, cpu1, strict=True)
    }
    print(
        json.dumps(
            {
                "rate": rate,
                "seconds": SECONDS,
                "pinned": PIN,
                "jobs": len(parts["total"]),
                "cpu_percent_of_a_core": cpu,
            }
        )
    )
    print(f"\n| {rate:,.0f} jobs/s, ms | p50 | p90 | p99 |\n|---|---:|---:|---:|")
    for part, values in parts.items():
        ms = [v * 1000 for v in values]
        print(f"| {part} | {pct(ms, 50):.2f} | {pct(ms, 90):.2f} | {pct(ms, 99):.2f} |")
    print()


async def main(server_url: str) -> None:
    await make_template(server_url)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-pickup-"))
    for rate in RATES:
        await one_rate(server_url, rate, log_dir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=Path, help="run the recording worker, write here")
    args = parser.parse_args()
    if args.worker:
        run_recording_worker(args.worker)
    else:
        run_on_server(main)
