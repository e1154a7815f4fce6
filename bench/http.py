"""The HTTP path: `conveyor api` as a real process, a concurrent client on the same machine.

    python -m bench.http      # part of `make bench`
    BENCH_PROFILE=out.txt python -m bench.http   # also py-spy the API for 5 s under load

Single: 32 keep-alive connections each sending `POST /v1/jobs` back to back (requests/s),
after 1, 8 and 32 connections for the shape of the curve. Batch: `POST /v1/jobs/batch`
with 1,000 jobs per request, 4 connections (jobs/s).

The client is a few lines of asyncio speaking HTTP/1.1 over raw sockets, not httpx: on two
shared cores httpx itself saturated a core at ~250 requests/s and measured the client, not
the server. It still runs on the same two cores as the API and PostgreSQL, so the figures are
a floor for what the API does with the machine to itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from bench.store import run_on_server, run_pgbench
from conveyor.embedded import free_port
from jobs.db import asyncpg_dsn
from jobs.migrate import upgrade
from stores.keys import create_key
from stores.quotas import QuotaStore

SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def request(path: str, key: str, body: object) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def connection(port: int, raw: bytes, until: float, expect: bytes = b"201") -> int:
    """Send `raw` back to back on one keep-alive connection until `until`; count answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < until:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            if head[9:12] != expect:
                raise AssertionError((head + body).decode(errors="replace"))
            done += 1
    finally:
        writer.close()
    return done


async def rate(port: int, raw: bytes, connections: int, seconds: float) -> float:
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(connection(port, raw, start + seconds) for _ in range(connections))
    )
    return sum(counts) / (time.perf_counter() - start)


def profile(pid: int, out: str) -> None:
    subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "-p",
            str(pid),
            "-d",
            "5",
            "-f",
            "raw",
            "-o",
            out,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def emit(figure: str, **values: float) -> None:
    print(json.dumps({"figure": figure, **{k: round(v) for k, v in values.items()}}), flush=True)


async def main(server_url: str) -> None:
    # pgbench's one-INSERT-per-transaction script with as many clients: what PostgreSQL
    # allows for the single-submit shape on this machine, measured first (see bench.store).
    pgbench = {
        int(str(r["clients"])): float(str(r["jobs_per_s"]))
        for r in run_pgbench(server_url, seconds=max(5, int(10 * SCALE)), clients=(1, 8, 32))
        if r["script"] == "s1_insert"
    }
    await asyncio.to_thread(upgrade, server_url)
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    owner = f"bench-{time.time_ns()}"
    key = await create_key(conn, owner, "user")
    # demo.noop is a demo kind, and the default quota caps a user's queue at 10,000: this user
    # gets the default's priorities and queues, the demo kinds and no cap (as `conveyor quotas
    # set key:NAME --demo --max-queued none` would): the figure is the submit path's.
    quotas = QuotaStore(conn)
    default = await quotas.get("*")
    assert default is not None
    await quotas.put(
        f"key:{owner}", {**dict(default), "demo_kinds": True, "max_queued": None}, by="bench.http"
    )
    await conn.close()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": server_url, "DB_POOL_MAX": "32"}
    api = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = max(3.0, 15.0 * SCALE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        single = request("/v1/jobs", key, {"kind": "demo.noop"})
        await rate(port, single, 8, 1.0)  # warm the pool
        curve = {c: await rate(port, single, c, seconds / 3) for c in (1, 8)}
        if os.environ.get("BENCH_PROFILE"):
            profile(api.pid, os.environ["BENCH_PROFILE"])
        curve[32] = await rate(port, single, 32, seconds)
        for c, r in curve.items():
            emit(f"POST /v1/jobs, {c} connections", requests_per_s=r)

        batch = request("/v1/jobs/batch", key, {"jobs": [{"kind": "demo.noop"}] * 1000})
        batched = 1000 * await rate(port, batch, 4, max(3.0, 10.0 * SCALE))
        emit("POST /v1/jobs/batch (1,000 per request), 4 connections", jobs_per_s=batched)
    finally:
        api.terminate()
        api.wait(timeout=30)
    print("\n| figure | value | pgbench s1, same clients | fraction |\n|---|---:|---:|---:|")
    for c, r in curve.items():
        base = pgbench.get(c)
        beside = f"{base:,.0f} | {r / base:.2f}" if base else "– | –"
        plural = "s" if c > 1 else ""
        print(f"| `POST /v1/jobs`, {c} connection{plural} | {r:,.0f} requests/s | {beside} |")
    print(
        f"| `POST /v1/jobs/batch`, 1,000 jobs per request, 4 connections | {batched:,.0f} jobs/s "
        "| – | – |"
    )


if __name__ == "__main__":
    run_on_server(main)
