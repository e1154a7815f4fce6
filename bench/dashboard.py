"""The dashboard's API calls against a big table: 1,000,000 finished jobs (and a few
thousand live ones), `conveyor api` as a real process, each call a page makes timed over
HTTP from a client on the same machine.

    python -m bench.dashboard              # part of `make bench`
    BENCH_SCALE=0.1 python -m bench.dashboard   # 100,000 finished jobs

The history is written with one INSERT … SELECT (what a week of a busy platform, about 100
jobs a minute, leaves behind: 97 % succeeded, 2 % dead with an error, 1 % cancelled, over 20
owners, 10 kinds and 3 queues), then VACUUM ANALYZE, as autovacuum would have left it.
The live jobs go through `Store.enqueue_many`, as an API would, and the per-minute and
per-hour aggregates are what that history leaves (each job waited and ran about a second).
A default `conveyor worker` runs beside the API (for the Workers pages). Each call is made
5 times to warm up, then 25 times timed; the median and the slowest are printed, in
milliseconds, against the 100 ms target.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from bench.store import run_on_server, with_database
from conveyor.embedded import free_port
from jobs.db import asyncpg_dsn
from jobs.metrics import DURATION_BUCKETS_S, bucket_of
from jobs.migrate import upgrade
from jobs.model import NewJob
from jobs.store import Store
from stores.keys import create_key

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
FINISHED = int(1_000_000 * SCALE)
LIVE = 3_000
WARM, TIMED = 5, 25
TARGET_MS = 100.0
N = len(DURATION_BUCKETS_S) + 1

HISTORY = """
INSERT INTO job (queue, kind, payload, state, attempt, max_attempts, owner, errors,
                 idempotency_key, created_at, run_at, started_at, finished_at, result)
SELECT (ARRAY['default', 'prices', 'research'])[1 + n % 3],
       'kind.' || (n % 10),
       jsonb_build_object('symbol', 'S' || (n % 500), 'n', n, 'window', 20 + n % 7),
       CASE WHEN n % 100 < 97 THEN 'succeeded' WHEN n % 100 < 99 THEN 'dead' ELSE 'cancelled' END,
       1, CASE WHEN n % 100 BETWEEN 97 AND 98 THEN 1 ELSE 5 END,
       'key:user' || (n % 20),
       CASE WHEN n % 100 BETWEEN 97 AND 98
            THEN jsonb_build_array(jsonb_build_object(
                'attempt', 1, 'type', 'RuntimeError', 'message', 'provider timed out',
                'at', now()))
            ELSE '[]'::jsonb END,
       CASE WHEN n % 50 = 0 THEN 'tick-' || n END,
       t, t, t + interval '1 second', t + interval '2 seconds',
       CASE WHEN n % 100 < 97 THEN '{"ok": true}'::jsonb END
FROM generate_series(1, $1) AS n,
     LATERAL (SELECT now() - make_interval(secs => ($1 - n) * 604800.0 / $1)) AS c(t)
"""


# The per-minute aggregates that history leaves, as the workers' flushes would have written
# them (each job waited and ran about a second), so the charts read a week of real density.
def _one_at(bucket: int) -> str:
    return "ARRAY[" + ", ".join("n" if i == bucket else "0" for i in range(N)) + "]::bigint[]"


def aggregates() -> tuple[str, str]:
    second = bucket_of(1.0)
    columns = "queue, kind, outcome, finished, wait_sum_s, wait_buckets, run_sum_s, run_buckets"
    rows = f"""
        queue, kind, state AS outcome, n, n * 1.0, {_one_at(second)}, n * 1.0,
               {_one_at(second)}
        FROM (SELECT date_bin('1 {{unit}}', finished_at, timestamptz 'epoch') AS at, queue,
                     kind, state,
                     count(*) AS n
              FROM job WHERE finished_at IS NOT NULL GROUP BY 1, 2, 3, 4) g
    """
    minutes = f"INSERT INTO job_minute (minute, {columns}) SELECT at, {rows.format(unit='minute')}"
    hours = f"INSERT INTO job_hour (hour, {columns}) SELECT at, {rows.format(unit='hour')}"
    return minutes, hours


async def fill(url: str) -> tuple[str, str, int]:
    """The history and live jobs; returns an admin key, a user's key and a dead job's id."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        admin = await create_key(conn, "root", "admin")
        user = await create_key(conn, "user7", "user")
        start = time.perf_counter()
        await conn.execute(HISTORY, FINISHED)
        filled = time.perf_counter() - start
        store = await Store.connect(url)
        try:
            await store.enqueue_many(
                [
                    NewJob(
                        kind=f"kind.{i % 10}",
                        queue=("default", "prices", "research")[i % 3],
                        owner=f"key:user{i % 20}",
                        payload={"symbol": f"S{i % 500}", "n": i},
                        run_after_s=3600 if i % 3 == 0 else None,
                    )
                    for i in range(LIVE)
                ]
            )
        finally:
            await store.close()
        for statement in aggregates():
            await conn.execute(statement)
        await conn.execute("VACUUM ANALYZE")
        dead = await conn.fetchval("SELECT max(id) FROM job WHERE state = 'dead'")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('job'))")
        print(
            json.dumps(
                {"filled": FINISHED, "live": LIVE, "seconds": round(filled, 1), "job_table": size}
            )
        )
        return admin, user, dead
    finally:
        await conn.close()


def calls(dead: int, worker: str) -> list[tuple[str, str, str]]:
    """(page, who, path): every read the pages make when opened, and the heavier choices
    a person makes on them (a filter, a search, a deep page)."""
    middle = FINISHED // 2
    return [
        ("Overview", "admin", "/v1/queues"),
        ("Overview", "admin", "/v1/throughput?minutes=15"),
        ("Overview", "admin", "/v1/workers"),
        ("Jobs", "admin", "/v1/kinds"),
        ("Jobs", "admin", "/v1/jobs/counts"),
        ("Jobs", "admin", "/v1/jobs?brief=true&limit=50"),
        ("Jobs", "admin", "/v1/jobs?brief=true&state=dead&limit=50"),
        ("Jobs", "admin", "/v1/jobs?brief=true&state=cancelled&limit=500"),
        ("Jobs", "admin", "/v1/jobs?brief=true&state=scheduled&limit=50"),
        ("Jobs", "admin", "/v1/jobs?brief=true&state=retrying&limit=50"),
        ("Jobs", "admin", "/v1/jobs/counts?kind=kind.3"),
        ("Jobs", "admin", "/v1/jobs?brief=true&kind=kind.3&state=dead&limit=50"),
        ("Jobs", "admin", "/v1/jobs/counts?owner=key:user3"),
        ("Jobs", "admin", "/v1/jobs?brief=true&owner=key:user3&limit=50"),
        ("Jobs", "admin", f"/v1/jobs?brief=true&limit=50&cursor={middle}"),
        ("Jobs", "admin", f"/v1/jobs?brief=true&q=%23{dead}"),
        ("Jobs", "admin", f"/v1/jobs?brief=true&q=tick-{(FINISHED // 100) * 50}"),
        ("Jobs", "admin", "/v1/jobs?brief=true&q=S123"),
        ("Jobs", "admin", "/v1/jobs?brief=true&q=no-such-text"),
        ("Jobs", "user", "/v1/jobs/counts"),
        ("Jobs", "user", "/v1/jobs?brief=true&limit=50"),
        ("Jobs", "user", "/v1/jobs?brief=true&state=dead&limit=50"),
        ("Dead letters", "admin", "/v1/jobs?state=dead&limit=50&brief=true"),
        ("Active jobs", "admin", "/v1/jobs/active"),
        ("Job", "admin", f"/v1/jobs/{dead}"),
        ("Job", "admin", f"/v1/jobs/{dead}/events"),
        ("Workers", "admin", "/v1/workers"),
        ("Workers", "admin", f"/v1/workers/{worker}"),
        ("Kinds", "admin", "/v1/kinds"),
        ("Kinds", "user", "/v1/kinds"),
        ("Charts", "admin", "/v1/stats/kinds?window=1h"),
        ("Charts", "admin", "/v1/stats/kinds?window=24h"),
        ("Charts", "admin", "/v1/stats/kinds?window=24h&kind=kind.3"),
        ("Charts", "admin", "/v1/stats/depth?window=24h"),
        ("API keys", "admin", "/v1/keys"),
        ("Audit", "admin", "/v1/audit"),
    ]


def spawn(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    env = {**os.environ, "DATABASE_URL": url, "CONVEYOR_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [conveyor, *args], env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


async def main(server_url: str) -> None:
    admin_conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin_conn.execute("DROP DATABASE IF EXISTS bench_dashboard")
        await admin_conn.execute("CREATE DATABASE bench_dashboard")
    finally:
        await admin_conn.close()
    url = with_database(server_url, "bench_dashboard")
    await asyncio.to_thread(upgrade, url)
    admin, user, dead = await fill(url)
    port = free_port()
    log = Path("bench-dashboard-api.log")
    api = spawn(url, log, "api", "--port", str(port))
    worker = spawn(url, log, "worker")  # its defaults; none of the history's kinds is its
    rows: list[dict[str, object]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        keys = {"admin": admin, "user": user}
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(200):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            workers: list[dict[str, object]] = []
            for _ in range(300):
                listed = await client.get(
                    "/v1/workers", headers={"Authorization": f"Bearer {admin}"}
                )
                if workers := listed.json():
                    break
                await asyncio.sleep(0.1)
            for page, who, path in calls(dead, str(workers[0]["id"])):
                headers = {"Authorization": f"Bearer {keys[who]}"}
                times = []
                for i in range(WARM + TIMED):
                    start = time.perf_counter()
                    r = await client.get(path, headers=headers)
                    took = (time.perf_counter() - start) * 1000
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
                    if i >= WARM:
                        times.append(took)
                row = {
                    "page": page,
                    "who": who,
                    "call": path,
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                    "answer_bytes": len(r.content),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(30)
    print()
    print(f"{FINISHED:,} finished jobs and {LIVE:,} live ones; target: under {TARGET_MS:.0f} ms")
    print()
    print("| page | as | call | median ms | slowest ms |")
    print("|---|---|---|---:|---:|")
    for row in rows:
        flag = "" if float(str(row["median_ms"])) < TARGET_MS else " **over**"
        print(
            f"| {row['page']} | {row['who']} | `{row['call']}` | {row['median_ms']}{flag}"
            f" | {row['max_ms']} |"
        )


if __name__ == "__main__":
    run_on_server(main)
