"""A soak at a steady rate while one session holds back vacuum for the whole run, Conveyor
beside PgQueuer on the same server (one after the other: a soak cannot be interleaved).

    python -m bench.soak                                  # 30 minutes each at 1,000 jobs/s
    BENCH_SOAK_S=180 BENCH_SOAK_RATE=1000 python -m bench.soak   # a short run
    BENCH_SOAK_SYSTEMS=conveyor python -m bench.soak      # one of them

Each system: one worker at its defaults as `bench.peers` starts it (Conveyor's is
`conveyor worker`'s runtime with the timestamping kind; PgQueuer's `QueueManager.run`), started
and idle; then a `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM <its table>;`
session opens and stays open to the end; jobs are enqueued one per call at the rate for the
length of the run. Printed per system: jobs offered and completed, the rate the sender held
(an enqueue waits for its commit, so a system that falls behind slows it), pickup latency
(enqueue call → handler start, one clock) p50/p99 for each minute, WAL bytes and commits per
completed job (`pg_current_wal_lsn()`, `pg_stat_database.xact_commit`), and at the end the dead
tuples and sizes of its tables. pgbench's queue-shaped scripts run first on the same server.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.peers import SYSTEMS, fresh, make_templates, pct, spawn, stamp_sender, steady, stop
from bench.store import run_on_server, run_pgbench

SECONDS = float(os.environ.get("BENCH_SOAK_S", "1800"))
RATE = float(os.environ.get("BENCH_SOAK_RATE", "1000"))
ONLY = os.environ.get("BENCH_SOAK_SYSTEMS", ",".join(SYSTEMS)).split(",")
TABLES = {"conveyor": ("job", "job_ready_0", "job_ready_1"), "pgqueuer": ("pgqueuer",)}


async def counters(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS wal,"
        " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits"
    )
    assert row is not None
    return int(row["wal"]), int(row["commits"])


async def soak(server_url: str, system: str, log_dir: Path) -> dict[str, object]:
    url = await fresh(server_url, system)
    stamps = log_dir / f"{system}-soak.json"
    proc = spawn(system, url, 10, log_dir / f"{system}-soak.log", STAMP_FILE=str(stamps))
    watch = await asyncpg.connect(url)
    pinned = await asyncpg.connect(url)
    try:
        await asyncio.sleep(3.0)  # started and idle
        await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await pinned.fetchval(f"SELECT count(*) FROM {TABLES[system][0]}")
        wal0, commits0 = await counters(watch)
        send, close = await stamp_sender(system, url, RATE)
        sending = time.perf_counter()
        await steady(RATE, SECONDS, send)
        sent_in_s = time.perf_counter() - sending
        await asyncio.sleep(2.0)  # the last ones finish
        await close()
        wal1, commits1 = await counters(watch)
        tables = {}
        for table in TABLES[system]:
            row = await watch.fetchrow(
                "SELECT n_dead_tup, pg_total_relation_size(relid) AS bytes"
                " FROM pg_stat_user_tables WHERE relname = $1",
                table,
            )
            assert row is not None
            tables[table] = {"dead_tuples": row["n_dead_tup"], "bytes": row["bytes"]}
    finally:
        await pinned.close()
        await watch.close()
        stop([proc])
    done = json.loads(stamps.read_text())
    start = min(t for t, _ in done)
    minutes: dict[int, list[float]] = {}
    for t, lat in done:
        minutes.setdefault(int((t - start) // 60), []).append(lat * 1000)
    offered = int(RATE * SECONDS)
    return {
        "system": system,
        "offered": offered,
        "completed": len(done),
        "completed_share": round(len(done) / offered, 4),
        # Each enqueue waits for its commit, so a system that cannot keep up slows the sender:
        # the rate it held, not only the count, says whether it kept the offered rate.
        "sent_per_s": round(offered / sent_in_s, 1),
        "rate_held_share": round(min(1.0, SECONDS / sent_in_s), 4),
        "pickup_ms_per_minute": [
            {"minute": m, "p50": round(pct(v, 50), 2), "p99": round(pct(v, 99), 2)}
            for m, v in sorted(minutes.items())
        ],
        "wal_bytes_per_job": round((wal1 - wal0) / max(1, len(done))),
        "commits_per_job": round((commits1 - commits0) / max(1, len(done)), 2),
        "tables_at_end": tables,
    }


async def main(server_url: str) -> None:
    run_pgbench(server_url, seconds=10, clients=(1, 2))  # prints its figures, same server
    await make_templates(server_url)
    with tempfile.TemporaryDirectory() as logs:
        for system in ONLY:
            print(json.dumps(await soak(server_url, system, Path(logs))), flush=True)


if __name__ == "__main__":
    run_on_server(main)
