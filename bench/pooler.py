"""Conveyor's drain straight to Postgres beside the same drain through PgBouncer in
transaction mode (DB_POOLER=transaction), on the same server, in the same run, interleaved.

    make bench                              # (part of it) embedded durable cluster
    python -m bench.pooler                  # this benchmark alone
    BENCH_REPEATS=5 python -m bench.pooler

20,000 no-op jobs already queued; the clock runs from spawning two `conveyor worker
--concurrency C --processes 0` processes until the last job is done, as `bench.peers`'
drain. Through the pooler the workers get DATABASE_DIRECT_URL, so they LISTEN as on a
direct connection; what differs is each hot statement's transaction (begin and SET LOCAL,
the statement, commit) and the pooler's hop.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from bench.peers import DRAIN_JOBS, drain, make_templates
from bench.store import run_on_server, server_facts
from conveyor.pgbouncer import PgBouncer, find_pgbouncer

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
WORKERS = 2


async def main(server_url: str) -> None:
    if find_pgbouncer() is None:
        print("# pgbouncer not found (apt-get install pgbouncer); skipped", flush=True)
        return
    print(f"# server: {await server_facts(server_url)}", flush=True)
    await make_templates(server_url)
    logs = Path(tempfile.mkdtemp(prefix="bench-pooler-"))
    with PgBouncer(server_url) as bouncer:
        print(
            f"# {DRAIN_JOBS:,} no-op jobs, {WORKERS} workers, PgBouncer transaction mode, "
            f"pool size {bouncer.pool_size}; median (min–max) of {REPEATS}",
            flush=True,
        )
        print("| drain, jobs/s | direct | through PgBouncer | ratio |")
        print("|---|---:|---:|---:|")
        for c in (10, 100):
            rates: dict[str, list[float]] = {"direct": [], "pooled": []}
            for _ in range(REPEATS):  # A B A B
                rates["direct"].append(await drain(server_url, "conveyor", c, WORKERS, logs))
                rates["pooled"].append(
                    await drain(server_url, "conveyor", c, WORKERS, logs, through=bouncer.url)
                )
            d, p = (statistics.median(rates[k]) for k in ("direct", "pooled"))
            span = {k: f"{min(v):,.0f}–{max(v):,.0f}" for k, v in rates.items()}
            print(
                f"| C = {c} | {d:,.0f} ({span['direct']}) | {p:,.0f} ({span['pooled']}) "
                f"| {p / d:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    run_on_server(main)
