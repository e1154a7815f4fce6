"""How long the charts' reads take over a full retention of per-minute aggregates.

    python -m bench.dashboard_stats                      # embedded durable cluster, 8 days
    BENCH_DATABASE_URL=… python -m bench.dashboard_stats # an existing server
    BENCH_DAYS=2 BENCH_KINDS=5 python -m bench.dashboard_stats   # a quick run

Fills `job_minute` (and `job_hour`, its roll-up) with a row for every (queue, kind, outcome)
in every minute of BENCH_DAYS days (default 8, the retention: 20 kinds × 3 queues × 5
outcomes = 300 rows a minute, 3.5 million rows, a deployment where every kind runs on every
queue and meets every outcome each minute) and `queue_depth` with a sample per queue a
minute, then times each Store call the charts' routes make (`kind_totals`, `kind_series`,
`depth_series`, with the route's own assembly of the figures), and a worker's flush and
depth sample, over the last hour and day.
Prints one JSON line per figure: the median and the slowest of BENCH_REPEATS runs (ms). The
size of `job` does not enter: these reads never touch it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from api.stats import KIND_WINDOWS, WINDOWS, depth_lines, kind_stats, series_points
from bench.store import make_template, run_on_server, with_database
from jobs.metrics import DURATION_BUCKETS_S, Tally, window_starts
from jobs.store import Store

DAYS = float(os.environ.get("BENCH_DAYS", "8"))
KINDS = int(os.environ.get("BENCH_KINDS", "20"))
QUEUES = int(os.environ.get("BENCH_QUEUES", "3"))
OUTCOMES = ["succeeded", "dead", "retried", "cancelled", "lease_expired"][
    : int(os.environ.get("BENCH_OUTCOMES", "5"))
]
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))

N = len(DURATION_BUCKETS_S) + 1


def _histogram(term: str) -> str:
    """An array of N bucket counts that differ with `term` (a row's kind and minute)."""
    return "ARRAY[" + ", ".join(f"(({term}) + {i}) % 7" for i in range(N)) + "]::bigint[]"


# Every row's histograms differ a little (by kind and minute), as real ones would.
FILL = f"""
INSERT INTO job_minute (minute, queue, kind, outcome, finished,
                        wait_sum_s, wait_buckets, run_sum_s, run_buckets)
SELECT m, 'queue-' || q, 'kind.' || k, o, 10 + k,
       1.5 * k, {_histogram("k + extract(minute FROM m)::int")},
       2.5 * k, {_histogram("k * 3 + extract(hour FROM m)::int")}
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                     date_trunc('minute', now()), interval '1 minute') m,
     generate_series(1, $2) q, generate_series(1, $3) k, unnest($4::text[]) o
"""


# The same rows rolled up by the hour, as the workers' flushes keep them (jobs.sql.ADD_MINUTES).
def _summed(column: str) -> str:
    return "ARRAY[" + ", ".join(f"sum({column}[{i}])" for i in range(1, N + 1)) + "]::bigint[]"


FILL_HOURS = f"""
INSERT INTO job_hour (hour, queue, kind, outcome, finished,
                      wait_sum_s, wait_buckets, run_sum_s, run_buckets)
SELECT date_bin('1 hour', minute, timestamptz 'epoch'), queue, kind, outcome, sum(finished),
       sum(wait_sum_s),
       {_summed("wait_buckets")}, sum(run_sum_s), {_summed("run_buckets")}
FROM job_minute
GROUP BY 1, 2, 3, 4
"""
FILL_DEPTH = """
INSERT INTO queue_depth (minute, queue, queued, running)
SELECT m, q, (extract(epoch FROM m)::bigint / 60) % 500, 8
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                     date_trunc('minute', now()), interval '1 minute') m,
     unnest(array_append(ARRAY(SELECT 'queue-' || q FROM generate_series(1, $2) q), '')) q
"""


async def timed(name: str, call: Callable[[], Awaitable[Any]], **extra: Any) -> None:
    await call()  # warm: the first run reads the pages into shared buffers
    runs = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        await call()
        runs.append((time.perf_counter() - t) * 1000)
    print(
        json.dumps(
            {
                "figure": name,
                "median_ms": round(statistics.median(runs), 1),
                "max_ms": round(max(runs), 1),
                **extra,
            }
        ),
        flush=True,
    )


async def main(server_url: str) -> None:
    await make_template(server_url)
    admin = await asyncpg.connect(server_url)
    await admin.execute("DROP DATABASE IF EXISTS bench_stats WITH (FORCE)")
    await admin.execute('CREATE DATABASE bench_stats TEMPLATE "bench_template"')
    await admin.close()
    url = with_database(server_url, "bench_stats")
    store = await Store.connect(url)
    try:
        minutes = int(DAYS * 1440)
        t = time.perf_counter()
        async with store.pool.acquire() as conn:
            await conn.execute(FILL, minutes, QUEUES, KINDS, OUTCOMES)
            await conn.execute(FILL_HOURS)
            await conn.execute(FILL_DEPTH, minutes, QUEUES)
            await conn.execute("VACUUM ANALYZE job_minute")
            await conn.execute("VACUUM ANALYZE job_hour")
            await conn.execute("VACUUM ANALYZE queue_depth")
            rows = await conn.fetchval("SELECT count(*) FROM job_minute")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('job_minute'))"
            )
        print(
            json.dumps(
                {
                    "filled": {"job_minute_rows": rows, "size": size, "days": DAYS},
                    "per_minute": QUEUES * KINDS * len(OUTCOMES),
                    "seconds": round(time.perf_counter() - t, 1),
                }
            ),
            flush=True,
        )
        now = await store.now()
        for window, (span, bucket) in WINDOWS.items():
            kind_span, kind_bucket = KIND_WINDOWS[window]
            kind_buckets = window_starts(now, kind_span, kind_bucket)
            buckets = window_starts(now, span, bucket)
            # an hour: its minutes (and the hour it reaches into); a day: its hours
            rows_read = QUEUES * KINDS * len(OUTCOMES) * (61 if kind_bucket == 1 else 24)
            read = {"window": window, "rows_read_at_most": rows_read}

            async def kinds_table(since: Any = kind_buckets[0]) -> None:
                kind_stats(await store.kind_totals(since))

            async def one_kind(
                since: Any = kind_buckets[0], b: int = kind_bucket, bs: Any = kind_buckets
            ) -> None:
                series_points(bs, await store.kind_series("kind.1", since, b))

            async def depth(since: Any = buckets[0], b: int = bucket, bs: Any = buckets) -> None:
                depth_lines(bs, await store.depth_series(since, b))

            await timed(f"kind_totals, {window}", kinds_table, **read)
            await timed(f"kind_series of one kind, {window}", one_kind, **read)
            await timed(f"depth_series, {window}", depth, window=window)

        async def flush() -> None:
            tally = Tally()
            at = time.time()
            for q in range(QUEUES):
                for k in range(KINDS):
                    tally.record(
                        f"queue-{q + 1}", f"kind.{k + 1}", "succeeded", 0.02, wait_s=0.1, at=at
                    )
            await store.add_minutes(tally.take_minutes())

        await timed("add_minutes, a worker's flush of every (queue, kind)", flush)
        await timed("sample_depth, a minute already sampled", store.sample_depth)
    finally:
        await store.close()


if __name__ == "__main__":
    run_on_server(main)
