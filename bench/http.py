"""The HTTP path: `conveyor api` as a real process, a concurrent client on the same machine.

    python -m bench.http      # part of `make bench`

Single: 32 connections each sending `POST /v1/jobs` back to back for 15 s (requests/s).
Batch: `POST /v1/jobs/batch` with 1,000 jobs per request, 4 connections (jobs/s).
The client (httpx) runs on the same two cores as the server and PostgreSQL, so the figures
are a floor for what the API does with the machine to itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import asyncpg
import httpx

from api.keys import create_key
from bench.store import run_on_server
from jobs.db import asyncpg_dsn
from jobs.embedded import free_port
from jobs.migrate import upgrade

SCALE = float(os.environ.get("BENCH_SCALE", "1"))


async def hammer(client: httpx.AsyncClient, seconds: float, body: dict[str, object]) -> int:
    done = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        r = await client.post("/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        done += 1
    return done


async def main(server_url: str) -> None:
    await asyncio.to_thread(upgrade, server_url)
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    key = await create_key(conn, f"bench-{time.time_ns()}", "user")
    await conn.close()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": server_url, "DB_POOL_MAX": "32"}
    api = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=30
        ) as client:
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            seconds = max(3.0, 15.0 * SCALE)
            if os.environ.get("BENCH_PROFILE"):  # py-spy the API while it is under load
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(api.pid),
                        "-d",
                        "5",
                        "-f",
                        "raw",
                        "-o",
                        os.environ["BENCH_PROFILE"],
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            await hammer(client, 1.0, {"kind": "demo.noop"})  # warm the pool
            t = time.perf_counter()
            counts = await asyncio.gather(
                *(hammer(client, seconds, {"kind": "demo.noop"}) for _ in range(32))
            )
            single = sum(counts) / (time.perf_counter() - t)
            print(
                json.dumps(
                    {"figure": "POST /v1/jobs, 32 connections", "requests_per_s": round(single)}
                ),
                flush=True,
            )

            batch = {"jobs": [{"kind": "demo.noop"} for _ in range(1000)]}
            rounds = max(2, int(20 * SCALE))

            async def send_batches() -> int:
                for _ in range(rounds):
                    r = await client.post("/v1/jobs/batch", json=batch)
                    assert r.status_code == 201, r.text
                return rounds * 1000

            t = time.perf_counter()
            jobs = sum(await asyncio.gather(*(send_batches() for _ in range(4))))
            batched = jobs / (time.perf_counter() - t)
            print(
                json.dumps(
                    {
                        "figure": "POST /v1/jobs/batch (1,000 per request), 4 connections",
                        "jobs_per_s": round(batched),
                    }
                ),
                flush=True,
            )
    finally:
        api.terminate()
        api.wait(timeout=30)
    print("\n| figure | value |\n|---|---:|")
    print(f"| `POST /v1/jobs`, 32 connections | {single:,.0f} requests/s |")
    print(
        f"| `POST /v1/jobs/batch`, 1,000 jobs per request, 4 connections | {batched:,.0f} jobs/s |"
    )


if __name__ == "__main__":
    run_on_server(main)
