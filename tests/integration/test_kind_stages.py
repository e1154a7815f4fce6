"""A kind's load and save run inside the job's timeout, in a real worker (in this process,
with its real services) against real Postgres."""

from __future__ import annotations

import asyncio

from compute.specs import DemoSleep
from jobs.model import JobState, NewJob
from jobs.store import Store
from tests.support import eventually
from worker.registry import Registry
from worker.runtime import Worker
from worker.settings import WorkerSettings


async def slow(db, job, payload, *rest):  # a load or a save that takes far too long
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO pattern (symbol, interval, ts, pattern, direction,"
                           " strength, job_id) VALUES ('X', '1d', now(), 'doji', 'neutral', 1, $1)",
                           job.id)  # fmt: skip
        await asyncio.sleep(payload.seconds)
    return {"stored": True}


async def quick(ctx, payload, inputs=None):
    return {"computed": True}


async def test_a_slow_load_or_save_times_out_and_stores_nothing(store: Store, db_url: str):
    registry = Registry()
    registry.register("test.slow_load", quick, DemoSleep, load=slow)
    registry.register("test.slow_save", quick, DemoSleep, save=slow)
    registry.register("test.fine", quick, DemoSleep, load=lambda *a: _none(), save=_saved)
    worker = Worker(
        store,
        db_url,
        registry,
        WorkerSettings(processes=0, cron=False, lease_s=5, queues=["stages"]),
    )
    running = asyncio.create_task(worker.run())
    try:
        ids = {}
        for kind in ("test.slow_load", "test.slow_save", "test.fine"):
            job = NewJob(
                kind=kind, payload={"seconds": 30}, timeout_s=1, max_attempts=1, queue="stages"
            )
            ids[kind] = (await store.enqueue(job)).id

        async def ended() -> bool:
            states = [(await store.get(i)).state for i in ids.values()]
            return all(s.is_terminal for s in states)

        await eventually(ended, 20)
        for kind in ("test.slow_load", "test.slow_save"):
            job = await store.get(ids[kind])
            assert job.state == JobState.DEAD, kind
            assert (job.errors[-1]["type"], job.errors[-1]["message"]) == (
                "Timeout",
                "ran longer than 1s",
            ), kind
        fine = await store.get(ids["test.fine"])
        assert fine.state == JobState.SUCCEEDED and fine.result == {"saved": {"computed": True}}
        # the timed-out transactions rolled back: nothing half-stored
        assert await store.pool.fetchval("SELECT count(*) FROM pattern") == 0
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 30)


async def _none() -> None:
    return None


async def _saved(db, job, payload, output):
    return {"saved": output}
