"""Two `conveyor worker` processes keep their speed while a REPEATABLE READ session holds the
vacuum horizon back for the whole run (the full figure is `bench/horizon.py`'s)."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import pytest

from jobs.model import NewJob
from jobs.store import Store
from tests.processes import Processes

pytestmark = pytest.mark.slow

BURSTS, BURST = 10, 20_000


async def drained(conn: asyncpg.Connection, first: int, last: int) -> bool:
    """Whether jobs `first`..`last` all succeeded. Asked every few milliseconds, so it reads
    `job_ready` (small: its halves are emptied) until no job is queued, and only then the
    burst's rows by id: `job`'s partial indexes hold an entry for every job claimed since the
    horizon was pinned, and probing them was most of the machine's work by the fifth burst."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM job_ready)"):
        return False
    return not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM job WHERE id BETWEEN $1 AND $2 AND state <> 'succeeded')",
        first,
        last,
    )


async def test_two_workers_drain_200000_jobs_under_a_held_horizon_each_once(
    store: Store, procs: Processes, db_url: str
):
    pinned = await asyncpg.connect(db_url)
    watch = await asyncpg.connect(db_url)
    try:
        await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await pinned.fetchval("SELECT count(*) FROM job")
        workers = [procs.start_worker("--processes", "0") for _ in range(2)]
        await asyncio.sleep(2.0)  # started and idle
        rates = []
        for _ in range(BURSTS):
            t = time.perf_counter()
            ids = await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(BURST)])
            while not await drained(watch, ids[0].id, ids[-1].id):
                assert all(w.poll() is None for w in workers), procs.log(workers[0])
                await asyncio.sleep(0.02)
            rates.append(BURST / (time.perf_counter() - t))
        # Still pinned: the session's snapshot sees none of the jobs.
        assert await pinned.fetchval("SELECT count(*) FROM job") == 0
    finally:
        await pinned.close()
    try:
        counts = await watch.fetchrow(
            "SELECT count(*) AS jobs, count(*) FILTER (WHERE state = 'succeeded' AND attempt = 1)"
            " AS once FROM job"
        )
        assert counts["jobs"] == counts["once"] == BURSTS * BURST
        assert await watch.fetchval("SELECT count(*) FROM job_ready") == 0
    finally:
        await watch.close()
    # Claiming from `job` itself, the rate fell burst by burst (to 0.39 in bench.horizon, 0.25
    # in the run); now it holds at about 1. A generous floor, and medians: the suite
    # runs other tests beside this one, and a neighbour's burst of work can slow any one burst
    # here (one of the last three once ran at 0.1 while the two around it ran at 1.3 and 1.6),
    # where a decay slows them all.
    first, last = statistics.median(rates[:3]), statistics.median(rates[-3:])
    assert last >= 0.5 * first, [round(r) for r in rates]
