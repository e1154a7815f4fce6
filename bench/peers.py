"""Conveyor beside PgQueuer on the same server, in the same run, interleaved.

    make bench                             # (part of it) embedded durable cluster
    python -m bench.peers                  # this benchmark alone
    BENCH_REPEATS=5 python -m bench.peers  # repetitions of each figure (default 3)
    BENCH_ONLY=drain,enqueue python -m bench.peers   # some of: pgbench, startup, drain,
                                                     # enqueue, latency
    BENCH_BASELINE=../old python -m bench.peers      # and an earlier checkout, interleaved

Every figure is measured as a user or an operator meets the system, A B A B:

- **drain**: 20,000 no-op jobs already queued; the clock runs from spawning the worker
  processes (start-up included, as an autoscaler sees it) until the last job is done.
  Conveyor: `conveyor worker --concurrency C --processes 0` with CONVEYOR_LOG_LEVEL=WARNING;
  PgQueuer: `QueueManager.run(batch_size=C)` on its asyncpg driver (`bench.peer_pgqueuer`).
- **enqueue**: one job per call from one client (`Store.enqueue` / `Queries.enqueue`), and
  20,000 in one call (`Store.enqueue_many` / `Queries.enqueue` with lists).
- **startup**: one job already queued; from spawning one worker (C = 10) until it is done,
  and (Conveyor only) until its claim, from the job's `started_at`.
- **latency**: one worker, jobs enqueued at a steady rate; each handler records the time
  from the enqueue call to its own start on the machine's monotonic clock (one clock for
  both processes). Conveyor's worker is `conveyor worker`'s runtime with one more kind
  (`bench.peer_conveyor`).

Each Conveyor figure is reported as a ratio to PgQueuer's from the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from pgqueuer import AsyncpgDriver, Queries

from bench.store import make_template, run_on_server, run_pgbench, server_facts, with_database
from jobs.model import NewJob
from jobs.store import Store

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ONLY = set(
    filter(None, os.environ.get("BENCH_ONLY", "pgbench,startup,drain,enqueue,latency").split(","))
)
DRAIN_JOBS = max(1000, int(20_000 * SCALE))
SETTINGS = [(10, 1), (10, 2), (100, 1), (100, 2)]  # (C, worker processes)
SYSTEMS = ("conveyor", "pgqueuer")
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
BASELINE = os.environ.get("BENCH_BASELINE")
"""A checkout of an earlier Conveyor, run as a third system in the drain and start-up
figures, interleaved with the other two, with its own code and its own migrations: how a
change is measured against the commit before it on a machine whose speed drifts."""
WITH_BASELINE = (*SYSTEMS, "baseline") if BASELINE else SYSTEMS


def _env(url: str, system: str = "conveyor", **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "WARNING", **extra}
    if system == "baseline" and BASELINE:
        env["PYTHONPATH"] = BASELINE  # its packages before the installed ones
    return env


def _is_conveyor(system: str) -> bool:
    return system in ("conveyor", "baseline")


BASELINE_FILL = """
import asyncio, os, sys
from jobs.model import NewJob
from jobs.store import Store

async def fill(n):
    store = await Store.connect(os.environ["DATABASE_URL"])
    try:
        await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(n)])
    finally:
        await store.close()

asyncio.run(fill(int(sys.argv[1])))
"""
"""The baseline's jobs are put in by its own store: its statements match its schema."""


def spawn(system: str, url: str, c: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    if _is_conveyor(system):
        if "STAMP_FILE" in env:
            args = [sys.executable, "-m", "bench.peer_conveyor", "--concurrency", str(c)]
        else:
            args = [CONVEYOR, "worker", "--concurrency", str(c), "--processes", "0"]
    else:
        args = [sys.executable, "-m", "bench.peer_pgqueuer", "--batch", str(c)]
    return subprocess.Popen(
        args, env=_env(url, system, **env), stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


async def fresh(server_url: str, system: str) -> str:
    name = f"peer_{system}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{system}_template"')
    await admin.close()
    return with_database(server_url, name)


async def make_templates(server_url: str) -> None:
    await make_template(server_url)  # bench_template: Conveyor's migrated schema
    admin = await asyncpg.connect(server_url)
    for system in SYSTEMS:
        await admin.execute(f'DROP DATABASE IF EXISTS "{system}_template" WITH (FORCE)')
    await admin.execute('CREATE DATABASE "conveyor_template" TEMPLATE bench_template')
    await admin.execute('CREATE DATABASE "pgqueuer_template"')
    if BASELINE:
        await admin.execute('DROP DATABASE IF EXISTS "baseline_template" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "baseline_template"')
        url = with_database(server_url, "baseline_template")
        # its own migrations, and no default schedules (as bench_template has none)
        migrate = [
            sys.executable,
            "-c",
            "import os, jobs.migrate as m; m.upgrade(os.environ['DATABASE_URL'])",
        ]
        await asyncio.to_thread(subprocess.run, migrate, env=_env(url, "baseline"), check=True)
    await admin.close()
    conn = await asyncpg.connect(with_database(server_url, "pgqueuer_template"))
    await Queries(AsyncpgDriver(conn)).install()
    await conn.close()


async def enqueue(system: str, url: str, n: int, *, one_at_a_time: bool = False) -> float:
    """Seconds to put `n` no-op jobs in: one call each from one client, or one call."""
    if system == "baseline":
        assert not one_at_a_time, "the baseline takes part in the drain and start-up only"
        t = time.perf_counter()
        fill = [sys.executable, "-c", BASELINE_FILL, str(n)]
        await asyncio.to_thread(subprocess.run, fill, env=_env(url, "baseline"), check=True)
        return time.perf_counter() - t
    if system == "conveyor":
        store = await Store.connect(url)
        jobs = [NewJob(kind="demo.noop") for _ in range(n)]

        async def one() -> object:
            return await store.enqueue(NewJob(kind="demo.noop"))

        async def many() -> object:
            return await store.enqueue_many(jobs)

        close: Callable[[], Awaitable[None]] = store.close
    else:
        conn = await asyncpg.connect(url)
        queries = Queries(AsyncpgDriver(conn))

        async def one() -> object:
            return await queries.enqueue("noop", None)

        async def many() -> object:
            return await queries.enqueue(["noop"] * n, [None] * n, [0] * n)

        close = conn.close
    try:
        t = time.perf_counter()
        if one_at_a_time:
            for _ in range(n):
                await one()
        else:
            await many()
        return time.perf_counter() - t
    finally:
        await close()


async def left(system: str, conn: asyncpg.Connection) -> bool:
    """Whether any job is still queued or running. Asked every few milliseconds while the
    workers drain, so it reads the partial indexes of live jobs and stops at the first: a
    count over the table took 2.5 ms (PgQueuer's) and 5.8 ms (Conveyor's) at 20,000 rows, a
    quarter and half a core of the machine being measured."""
    if _is_conveyor(system):
        query = (
            "SELECT EXISTS (SELECT 1 FROM job WHERE state = 'queued')"
            " OR EXISTS (SELECT 1 FROM job WHERE state = 'running')"
        )
    else:
        query = (
            "SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE status = 'queued')"
            " OR EXISTS (SELECT 1 FROM pgqueuer WHERE status = 'picked')"
        )
    return bool(await conn.fetchval(query))


async def drain(
    server_url: str,
    system: str,
    c: int,
    processes: int,
    log_dir: Path,
    *,
    through: str | None = None,
    **env: str,
) -> float:
    """Jobs/s of `processes` workers draining DRAIN_JOBS queued no-op jobs, start-up
    included. `through`: a transaction pooler's URL, which Conveyor's workers reach the
    database through (DB_POOLER=transaction, the database itself as DATABASE_DIRECT_URL);
    `env` more of their environment."""
    url = await fresh(server_url, system)
    await enqueue(system, url, DRAIN_JOBS)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        log = log_dir / f"{system}-drain.log"
        workers_url = url
        if through:
            workers_url = with_database(through, url.rsplit("/", 1)[1])
            env = {"DB_POOLER": "transaction", "DATABASE_DIRECT_URL": url, **env}
        t = time.perf_counter()
        procs = [spawn(system, workers_url, c, log, **env) for _ in range(processes)]
        try:
            while await left(system, conn):
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"a {system} worker exited: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.01)
            return DRAIN_JOBS / (time.perf_counter() - t)
        finally:
            stop(procs)
    finally:
        await conn.close()


async def startup(server_url: str, system: str, log_dir: Path) -> tuple[float, float | None]:
    """Seconds from spawning a worker to its first job done (one job already queued), and
    for Conveyor to its first claim: the job's `started_at`, which the claim sets from the
    database's clock, against the wall clock read at the spawn (one machine, one clock).
    PgQueuer keeps no such time once a job is done."""
    url = await fresh(server_url, system)
    await enqueue(system, url, 1)
    conn = await asyncpg.connect(url)
    try:
        spawned_at = time.time()
        t = time.perf_counter()
        proc = spawn(system, url, 10, log_dir / f"{system}-startup.log")
        try:
            while await left(system, conn):
                await asyncio.sleep(0.002)
            done = time.perf_counter() - t
        finally:
            stop([proc])
        if not _is_conveyor(system):
            return done, None
        claimed_at = await conn.fetchval("SELECT extract(epoch FROM started_at) FROM job")
        return done, float(claimed_at) - spawned_at
    finally:
        await conn.close()


async def steady(
    rate: float, seconds: float, send: Callable[[], Awaitable[None]], in_flight: int = 64
) -> None:
    """Call `send` `rate` times a second for `seconds`, open loop: each call starts when it
    is due, whether or not the ones before it have returned (at most `in_flight` at once),
    as an application's request handlers would. A sender that waited for each call would
    offer less whenever the system slowed, and measure its own round trips instead."""
    t0 = time.perf_counter()
    slots = asyncio.Semaphore(in_flight)
    calls: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            await send()
        finally:
            slots.release()

    k = 0
    while (due := t0 + k / rate) < t0 + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await slots.acquire()
        task = asyncio.create_task(one())
        calls.add(task)
        task.add_done_callback(calls.discard)
        k += 1
    await asyncio.gather(*calls)


async def stamp_sender(
    system: str, url: str, rate: float
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """(send, close): `send` enqueues one job whose handler records its pickup latency."""
    if system == "conveyor":
        store = await Store.connect(url)

        async def send() -> None:
            await store.enqueue(NewJob(kind="bench.stamp", payload={"t": time.monotonic()}))

        return send, store.close
    conns = [await asyncpg.connect(url) for _ in range(8)]
    idle: asyncio.Queue[Queries] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(Queries(AsyncpgDriver(c)))

    async def send_pgq() -> None:
        t = time.monotonic()  # the call, not the moment a connection came free
        queries = await idle.get()
        try:
            await queries.enqueue("stamp", str(t).encode())
        finally:
            idle.put_nowait(queries)

    async def close() -> None:
        for c in conns:
            await c.close()

    return send_pgq, close


async def latency(
    server_url: str, system: str, rate: float, seconds: float, log_dir: Path
) -> list[float]:
    """Milliseconds from each enqueue call to its handler's start, at a steady `rate`."""
    url = await fresh(server_url, system)
    stamps = log_dir / f"{system}-stamps.json"
    proc = spawn(system, url, 10, log_dir / f"{system}-latency.log", STAMP_FILE=str(stamps))
    try:
        await asyncio.sleep(3.0)  # started and idle, listening
        send, close = await stamp_sender(system, url, rate)
        await steady(rate, seconds, send)
        await asyncio.sleep(1.0)
        await close()
    finally:
        stop([proc])
    return [lat * 1000 for _, lat in json.loads(stamps.read_text())]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(rates: dict[str, list[float]], digits: int | None = None) -> dict[str, object]:
    """Median and range per system; ratios where both sides were measured (a system with
    no values, such as PgQueuer's first claim, gets none)."""
    out: dict[str, object] = {}
    for system, values in rates.items():
        if values:
            out[system] = {
                "median": round(statistics.median(values), digits),
                "range": [round(min(values), digits), round(max(values), digits)],
            }

    def ratio(other: str) -> float | None:
        if not rates.get("conveyor") or not rates.get(other):
            return None
        return round(statistics.median(rates["conveyor"]) / statistics.median(rates[other]), 2)

    out["ratio"] = ratio("pgqueuer")
    if "baseline" in rates:
        out["ratio_to_baseline"] = ratio("baseline")
    return out


def row(name: str, s: dict[str, object]) -> str:
    def cell(system: str) -> str:
        v = s.get(system)
        if v is None:
            return "–"
        assert isinstance(v, dict)
        lo, hi = v["range"]
        return f"{v['median']:,} ({lo:,}–{hi:,})"

    def times(key: str) -> str:
        value = s[key]
        return "–" if value is None else f"{value:.2f}×"

    line = f"| {name} | {cell('conveyor')} | {cell('pgqueuer')} | {times('ratio')} |"
    if "ratio_to_baseline" in s:
        line += f" {cell('baseline')} | {times('ratio_to_baseline')} |"
    elif BASELINE:
        line += " | |"
    return line


async def main(server_url: str) -> None:
    await make_templates(server_url)
    print(json.dumps({"postgres": await server_facts(server_url)}), flush=True)
    table: list[str] = []
    if "pgbench" in ONLY:
        # What PostgreSQL itself allows for queue-shaped work here, same server, same run.
        for r in run_pgbench(server_url, seconds=max(5, int(10 * SCALE)), clients=(1, 2)):
            name = f"pgbench {r['script']}, {r['clients']} client(s), jobs/s"
            table.append(f"| {name} | {r['jobs_per_s']:,} (PostgreSQL alone) | | |")
    with tempfile.TemporaryDirectory() as logs:
        log_dir = Path(logs)
        if "startup" in ONLY:
            took: dict[str, list[float]] = {s: [] for s in WITH_BASELINE}
            claimed: dict[str, list[float]] = {s: [] for s in WITH_BASELINE}
            for _ in range(max(REPEATS, 5)):
                for system in WITH_BASELINE:
                    done, claim = await startup(server_url, system, log_dir)
                    took[system].append(1000 * done)
                    if claim is not None:
                        claimed[system].append(1000 * claim)
            for name, times in (
                ("start-up: spawn one worker → its first claim, ms", claimed),
                ("start-up: spawn one worker → its first job done, ms", took),
            ):
                s = summary(times)
                print(json.dumps({"figure": name, **s}), flush=True)
                table.append(row(name, s))
        if "enqueue" in ONLY:
            singles: dict[str, list[float]] = {s: [] for s in SYSTEMS}
            bulks: dict[str, list[float]] = {s: [] for s in SYSTEMS}
            n = max(500, int(5000 * SCALE))
            for _ in range(REPEATS):
                for system in SYSTEMS:
                    url = await fresh(server_url, system)
                    singles[system].append(n / await enqueue(system, url, n, one_at_a_time=True))
                    url = await fresh(server_url, system)
                    bulks[system].append(DRAIN_JOBS / await enqueue(system, url, DRAIN_JOBS))
            for name, rates in (
                (f"single enqueue, 1 client ({n:,} jobs), jobs/s", singles),
                (f"bulk enqueue, {DRAIN_JOBS:,} jobs in one call, jobs/s", bulks),
            ):
                s = summary(rates)
                print(json.dumps({"figure": name, **s}), flush=True)
                table.append(row(name, s))
        if "drain" in ONLY:
            for c, processes in SETTINGS:
                rates = {s: [] for s in WITH_BASELINE}
                for _ in range(REPEATS):
                    for system in WITH_BASELINE:
                        rates[system].append(await drain(server_url, system, c, processes, log_dir))
                name = (
                    f"drain {DRAIN_JOBS:,}, C = {c}, {processes} worker(s), "
                    "start-up included, jobs/s"
                )
                s = summary(rates)
                print(json.dumps({"figure": name, **s}), flush=True)
                table.append(row(name, s))
        if "latency" in ONLY:
            for rate, length in ((200.0, 15.0 * SCALE), (2000.0, 15.0 * SCALE)):
                runs: dict[int, dict[str, list[float]]] = {50: {}, 99: {}}
                for _ in range(REPEATS):
                    for system in SYSTEMS:
                        ms = await latency(server_url, system, rate, max(3.0, length), log_dir)
                        for p in runs:
                            runs[p].setdefault(system, []).append(pct(ms, p))
                for p, by_system in runs.items():
                    name = f"pickup latency p{p}, {rate:,.0f} jobs/s for {length:g} s, ms"
                    s = summary(by_system, digits=2)
                    print(json.dumps({"figure": name, **s}), flush=True)
                    table.append(row(name, s))
    header = "| figure | Conveyor, median (range) | PgQueuer, median (range) | ratio |"
    rule = "|---|---:|---:|---:|"
    if BASELINE:
        header += " baseline, median (range) | Conveyor / baseline |"
        rule += "---:|---:|"
    print("\n" + header)
    print(rule)
    print("\n".join(table))


if __name__ == "__main__":
    if shutil.which(CONVEYOR) is None:
        sys.exit(f"{CONVEYOR} not found: install the project first (make bench does)")
    run_on_server(main)
