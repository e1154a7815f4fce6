"""Pausing a queue and limiting how many of its jobs run, against real Postgres with real
concurrent claims from several stores (each its own pool, as separate workers are)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from jobs.model import JobState, NewJob
from jobs.settings import DatabaseSettings
from jobs.store import Store
from jobs.transitions import Success


@pytest.fixture
async def workers(db_url: str, queue_settings) -> AsyncIterator[list[Store]]:
    stores = [
        await Store.connect(
            db_url, settings=queue_settings, db=DatabaseSettings(db_pool_min=1, db_pool_max=4)
        )
        for _ in range(4)
    ]
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


async def running(store: Store, queue: str = "default") -> int:
    return await store.pool.fetchval(
        "SELECT count(*) FROM job WHERE state = 'running' AND queue = $1", queue
    )


async def test_a_paused_queue_accepts_jobs_but_nothing_is_claimed_until_resumed(store):
    await store.control_queue("default", by="key:root", paused=True)
    await store.enqueue_many([NewJob(kind="k") for _ in range(5)])
    await store.enqueue(NewJob(kind="k", queue="other"))
    assert await store.claim(["default"], 10, "w", 30) == []
    [other] = await store.claim(["default", "other"], 10, "w", 30)  # other queues go on
    assert other.queue == "other"
    stats = {q["queue"]: q for q in await store.queue_stats()}
    assert stats["default"]["paused"] is True and stats["default"]["queued"] == 5

    await store.control_queue("default", by="key:root", paused=False)
    assert len(await store.claim(["default"], 10, "w", 30)) == 5


async def test_a_running_job_finishes_while_its_queue_is_paused(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(2)])
    [job] = await store.claim(["default"], 1, "w", 30)
    await store.control_queue("default", by="key:root", paused=True)
    assert await store.complete(job, Success("done"))
    assert (await store.get(job.id)).state is JobState.SUCCEEDED
    assert await store.claim(["default"], 10, "w", 30) == []


async def test_four_workers_claiming_at_once_never_run_more_than_the_limit(workers):
    first = workers[0]
    await first.control_queue("default", by="key:root", concurrency=3)
    await first.enqueue_many([NewJob(kind="k") for _ in range(120)])
    peak = 0
    done = 0

    async def work(store: Store) -> None:
        nonlocal peak, done
        while done < 120:
            claimed = await store.claim(["default"], random.randint(1, 5), "w", 30)
            peak = max(peak, await running(store))
            await asyncio.sleep(random.uniform(0, 0.003))
            for job in claimed:
                assert await store.complete(job, Success(None))
                done += 1
            if not claimed:
                await asyncio.sleep(0.001)

    await asyncio.wait_for(asyncio.gather(*(work(s) for s in workers)), 60)
    assert done == 120 and peak == 3  # the limit was reached, never passed
    states = await first.pool.fetch("SELECT state, count(*) FROM job GROUP BY state")
    assert {r["state"]: r["count"] for r in states} == {"succeeded": 120}


async def test_a_dead_workers_slots_free_at_lease_expiry_not_before(store):
    await store.control_queue("default", by="key:root", concurrency=2)
    await store.enqueue_many([NewJob(kind="k") for _ in range(5)])
    now = datetime.now(UTC)
    held = await store.claim(["default"], 5, "dead-worker", 30, now=now)
    assert len(held) == 2  # the limit, though five were asked for
    assert await store.claim(["default"], 5, "w", 30) == []
    await store.reap(now=now + timedelta(seconds=29))  # not expired yet: nothing frees
    assert await store.claim(["default"], 5, "w", 30) == []
    await store.reap(now=now + timedelta(seconds=31))
    assert len(await store.claim(["default"], 5, "w", 30)) == 2


async def test_a_changed_limit_applies_to_the_next_claim_and_lifting_it_frees_the_queue(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(10)])
    await store.control_queue("default", by="key:root", concurrency=1)
    assert len(await store.claim(["default"], 10, "w", 30)) == 1
    await store.control_queue("default", by="key:root", concurrency=4)
    assert len(await store.claim(["default"], 10, "w", 30)) == 3
    # a pause and a limit are separate: pausing keeps the limit, resuming restores it
    await store.control_queue("default", by="key:root", paused=True)
    control = {c["queue"]: c for c in await store.queue_controls()}["default"]
    assert (control["paused"], control["concurrency"]) == (True, 4)
    await store.control_queue("default", by="key:root", concurrency=None)
    assert await store.claim(["default"], 10, "w", 30) == []  # still paused
    await store.control_queue("default", by="key:root", paused=False)
    assert len(await store.claim(["default"], 10, "w", 30)) == 6  # no limit any more
    assert await running(store) == 10
