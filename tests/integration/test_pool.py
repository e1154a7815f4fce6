"""The process pool on its own: real child processes, no database."""

from __future__ import annotations

import asyncio

from jobs.transitions import Cancelled, Success, Timeout
from worker.pool import ProcessPool


def _start(
    pool: ProcessPool,
    job_id: int,
    kind: str,
    payload: dict,
    cancel: asyncio.Event,
    timeout_s: float | None = None,
) -> asyncio.Task:
    return asyncio.create_task(
        pool.run(
            job_id,
            kind,
            1,
            payload,
            on_progress=lambda *_: None,
            cancel=cancel,
            timeout_s=timeout_s,
        )
    )


async def _pool() -> ProcessPool:
    pool = ProcessPool(1, cancel_grace_s=0.5, app="tests.integration.pool_kinds:app")
    await pool.start()
    return pool


async def test_a_child_that_ignores_a_cancel_is_killed_and_replaced():
    pool = await _pool()
    try:
        before = pool.pids
        cancel = asyncio.Event()
        run = _start(pool, 1, "test.stubborn", {"n": 1}, cancel)
        await asyncio.sleep(0.5)
        started = asyncio.get_running_loop().time()
        cancel.set()
        outcome = await asyncio.wait_for(run, 10)
        assert outcome == Cancelled("cancel requested")
        assert asyncio.get_running_loop().time() - started < 3
        assert pool.pids != before  # a fresh child took the killed one's place
        progress: list[int] = []
        done = await pool.run(
            2,
            "demo.cpu",
            1,
            {"n": 400_000},
            on_progress=lambda p, m: progress.append(p),
            cancel=asyncio.Event(),
            timeout_s=30,
        )
        assert isinstance(done, Success) and done.result["n"] == 400_000
        assert progress and progress[-1] == 100
    finally:
        await pool.close()


async def test_a_timeout_stops_the_child():
    pool = await _pool()
    try:
        outcome = await pool.run(
            1,
            "test.stubborn",
            1,
            {"n": 1},
            on_progress=lambda *_: None,
            cancel=asyncio.Event(),
            timeout_s=0.5,
        )
        assert outcome == Timeout(0.5)
    finally:
        await pool.close()


async def test_a_job_cancelled_while_waiting_for_a_child_never_starts():
    pool = await _pool()
    try:
        busy_cancel = asyncio.Event()
        busy = _start(pool, 1, "test.stubborn", {"n": 1}, busy_cancel)
        await asyncio.sleep(0.3)
        waiting_cancel = asyncio.Event()
        waiting = _start(pool, 2, "demo.cpu", {"n": 1000}, waiting_cancel)
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the only child is busy
        waiting_cancel.set()
        assert await asyncio.wait_for(waiting, 2) == Cancelled("cancel requested")
        assert not busy.done()
        busy_cancel.set()
        assert await asyncio.wait_for(busy, 10) == Cancelled("cancel requested")
    finally:
        await pool.close()
