"""Store-level throughput (no HTTP), next to what pgbench does on the same server.

    make bench                      # embedded durable cluster, full sizes
    BENCH_DATABASE_URL=… make bench # an existing server (needs CREATE DATABASE)
    BENCH_SCALE=0.1 make bench      # a quick run at a tenth of the sizes
    BENCH_REPEATS=5 make bench      # drains repeated 5 times (median reported; default 3)

Prints one JSON line per figure, then a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from conveyor.embedded import EmbeddedPostgres, find_bin_dir
from jobs.migrate import upgrade
from jobs.model import NewJob
from jobs.settings import DatabaseSettings
from jobs.store import Store
from jobs.transitions import Success, decide

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SERVER_SETTINGS = {
    # Durable: every commit is flushed. Sized so checkpoints do not land mid-measurement.
    "shared_buffers": "'1GB'",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
}
PGBENCH = Path(__file__).resolve().parents[2] / "shared" / "pgbench" / "run.sh"


@dataclass
class Figure:
    name: str
    jobs: int
    seconds: float
    baseline: tuple[str, int] | None = None
    """The pgbench (script, clients) doing the same shape of work, for the fraction column."""

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    def emit(self) -> None:
        print(
            json.dumps(
                {
                    "figure": self.name,
                    "jobs": self.jobs,
                    "seconds": round(self.seconds, 3),
                    "jobs_per_s": round(self.rate),
                }
            ),
            flush=True,
        )


def n(count: int) -> int:
    return max(1, int(count * SCALE))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def fresh_store(server_url: str, name: str, template: str = "bench_template") -> Store:
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    await admin.close()
    return await Store.connect(
        with_database(server_url, name), db=DatabaseSettings(db_pool_min=4, db_pool_max=16)
    )


def median_figure(name: str, runs: list[tuple[int, float]]) -> Figure:
    """The run with the median rate; the spread goes in the name."""
    ordered = sorted(runs, key=lambda r: r[0] / r[1])
    jobs, seconds = ordered[len(ordered) // 2]
    rates = [round(j / s) for j, s in ordered]
    spread = f" (median of {len(runs)}: {min(rates):,}–{max(rates):,})" if len(runs) > 1 else ""
    return Figure(name + spread, jobs, seconds)


async def bench_single_enqueue(store: Store, total: int, concurrency: int) -> Figure:
    per = total // concurrency

    async def loop() -> None:
        async with store.pool.acquire() as conn:
            for _ in range(per):
                await store.enqueue(NewJob(kind="demo.noop"), conn=conn)

    t = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Figure(
        f"enqueue one at a time, {concurrency} connection(s)",
        per * concurrency,
        time.perf_counter() - t,
        baseline=("s1_insert", concurrency),
    )


async def bench_bulk_enqueue(store: Store, total: int) -> Figure:
    jobs = [NewJob(kind="demo.noop", payload={"i": i}) for i in range(total)]
    t = time.perf_counter()
    result = await store.enqueue_many(jobs)
    elapsed = time.perf_counter() - t
    assert len(result) == total
    return Figure(f"enqueue_many, {total:,} jobs in one call", total, elapsed)


async def drain(store: Store, loops: int, batch: int = 100) -> tuple[int, float]:
    backoff = store.settings.backoff()

    async def loop(i: int) -> int:
        done = 0
        while True:
            jobs = await store.claim(["default"], batch, f"bench-{i}", 30)
            if not jobs:
                return done
            now = jobs[0].started_at
            assert now is not None
            changes = [
                (
                    j.lease,
                    decide(
                        attempt=j.attempt,
                        max_attempts=j.max_attempts,
                        outcome=Success(),
                        now=now,
                        backoff=backoff,
                    ),
                )
                for j in jobs
            ]
            done += len(await store.finish_many(changes))

    t = time.perf_counter()
    counts = await asyncio.gather(*(loop(i) for i in range(loops)))
    return sum(counts), time.perf_counter() - t


async def drain_once(server_url: str, template: str, total: int, loops: int) -> tuple[int, float]:
    """Enqueue `total` no-op jobs into a fresh copy of `template`, then drain them."""
    store = await fresh_store(server_url, "bench_drain", template)
    try:
        await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(total)])
        await store.pool.execute("VACUUM ANALYZE job")
        await store.pool.execute("CHECKPOINT")
        done, seconds = await drain(store, loops)
        assert done == total, (done, total)
        return done, seconds
    finally:
        await store.close()


async def bench_drain(server_url: str, total: int, loops: int) -> Figure:
    runs = [await drain_once(server_url, "bench_template", total, loops) for _ in range(REPEATS)]
    figure = median_figure(f"drain {total:,} no-op jobs, {loops} claim→finish loop(s)", runs)
    figure.baseline = ("s3_batch", loops)
    return figure


async def bench_history(server_url: str, history: int, total: int) -> tuple[Figure, Figure]:
    """The same drain on an empty table and on one holding `history` finished jobs,
    alternated so that drift on the machine hits both alike."""
    store = await fresh_store(server_url, "bench_history_template")
    try:
        await store.pool.execute(
            """
            INSERT INTO job (kind, state, attempt, started_at, finished_at, created_at)
            SELECT 'demo.noop', 'succeeded', 1, now() - interval '1 day',
                   now() - interval '1 day', now() - interval '1 day'
            FROM generate_series(1, $1)
            """,
            history,
        )
        await store.pool.execute("VACUUM ANALYZE job")
    finally:
        await store.close()
    empty: list[tuple[int, float]] = []
    full: list[tuple[int, float]] = []
    # The ratio of two noisy rates is noisier still: at least five pairs.
    for _ in range(max(REPEATS, 5)):
        empty.append(await drain_once(server_url, "bench_template", total, 2))
        full.append(await drain_once(server_url, "bench_history_template", total, 2))
    return (
        median_figure(f"drain {total:,}, 2 loops, empty table", empty),
        median_figure(f"drain {total:,}, 2 loops, {history:,} finished jobs in the table", full),
    )


def run_pgbench(
    server_url: str, seconds: int, clients: tuple[int, ...] = (1, 2, 4)
) -> list[dict[str, object]]:
    if not PGBENCH.exists():
        print(
            f"# pgbench scripts not found next to the project ({PGBENCH.name}); skipped", flush=True
        )
        return []
    parts = urlsplit(server_url)
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port),
        "PGUSER": parts.username or "postgres",
    }
    env["PATH"] = str(find_bin_dir()) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        ["bash", str(PGBENCH), str(seconds), *(str(c) for c in clients)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    results = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            print(line, flush=True)
            results.append(json.loads(line))
    if proc.returncode:
        print(f"# pgbench run.sh exited {proc.returncode}: {proc.stderr[-500:]}", flush=True)
    return results


async def server_facts(server_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(server_url)
    facts = {"version": await conn.fetchval("SHOW server_version")}
    for name in (
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "shared_buffers",
        "max_wal_size",
        "wal_level",
    ):
        facts[name] = await conn.fetchval(f"SHOW {name}")
    await conn.close()
    return facts


async def make_template(server_url: str) -> None:
    """A migrated `bench_template` database that every measurement clones."""
    admin = await asyncpg.connect(server_url)
    await admin.execute("DROP DATABASE IF EXISTS bench_template WITH (FORCE)")
    await admin.execute("CREATE DATABASE bench_template")
    await admin.close()
    await asyncio.to_thread(upgrade, with_database(server_url, "bench_template"))


async def main(server_url: str) -> None:
    await make_template(server_url)

    facts = await server_facts(server_url)
    print(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "postgres": facts,
            }
        )
    )
    # pgbench first: the disk's flush latency drifts over minutes on shared machines, and the
    # single-row figures follow it, so keep the two measurements close together.
    pgbench = run_pgbench(server_url, seconds=max(5, int(15 * SCALE)))
    limits = {
        (str(r["script"]), int(str(r["clients"]))): float(str(r["jobs_per_s"])) for r in pgbench
    }
    figures: list[Figure] = []

    store = await fresh_store(server_url, "bench_enqueue")
    try:
        for concurrency in (1, 4):
            figures.append(await bench_single_enqueue(store, n(10_000), concurrency))
            figures[-1].emit()
        figures.append(await bench_bulk_enqueue(store, n(100_000)))
        figures[-1].emit()
    finally:
        await store.close()

    for loops in (1, 2, 4):
        figures.append(await bench_drain(server_url, n(50_000), loops))
        figures[-1].emit()

    empty, full = await bench_history(server_url, n(1_000_000), n(50_000))
    figures += [empty, full]
    empty.emit()
    full.emit()
    ratio = full.rate / empty.rate
    print(json.dumps({"figure": "history ratio (full / empty)", "ratio": round(ratio, 3)}))

    print(
        "\n| figure | jobs | seconds | jobs/s | pgbench, same shape | fraction |"
        "\n|---|---:|---:|---:|---|---:|"
    )
    for f in figures:
        limit = limits.get(f.baseline) if f.baseline else None
        versus = (
            f"{f.baseline[0]}, {f.baseline[1]} client(s): {limit:,.0f}"
            if limit and f.baseline
            else ""
        )
        fraction = f"{f.rate / limit:.2f}" if limit else ""
        print(
            f"| {f.name} | {f.jobs:,} | {f.seconds:.2f} | {f.rate:,.0f} | {versus} | {fraction} |"
        )
    print(f"| history ratio (full / empty) | | | {ratio:.2f} | | |")
    if pgbench:
        print("\n| pgbench script | clients | jobs/s |\n|---|---:|---:|")
        for r in pgbench:
            print(f"| {r['script']} | {r['clients']} | {r['jobs_per_s']:,} |")


def start_workers(url: str, count: int, log: Path) -> list[subprocess.Popen[bytes]]:
    """`count` `conveyor worker` processes with default options (one thread pool, no child
    processes), logging warnings and errors to `log`."""
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    env = {**os.environ, "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "WARNING"}
    return [
        subprocess.Popen(
            [conveyor, "worker", "--processes", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        for _ in range(count)
    ]


def run_on_server(bench: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """Run `bench(server_url)` on BENCH_DATABASE_URL, or on an embedded durable cluster."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        asyncio.run(bench(url))
        return
    pg = EmbeddedPostgres(durable=True, settings=SERVER_SETTINGS)
    try:
        asyncio.run(bench(pg.start()))
    finally:
        pg.destroy()


if __name__ == "__main__":
    run_on_server(main)
