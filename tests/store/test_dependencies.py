"""Jobs that wait for others, on real Postgres: chains, a diamond, a parent that dies, two
parents finishing at the same moment, and the reaper's sweep after a lost release."""

from __future__ import annotations

import asyncio

import pytest

from jobs.errors import JobNotFound, ParentFailed
from jobs.model import JobState, NewJob
from jobs.store import Store
from jobs.transitions import Failure, Success


async def run_one(store: Store, job_id: int, outcome=None) -> None:
    """Claim `job_id` (the only queued one) and finish it."""
    [claimed] = await store.claim(["default"], 10, "w", 30)
    assert claimed.id == job_id
    assert await store.complete(claimed, outcome or Success(None))


async def state(store: Store, job_id: int) -> JobState:
    return (await store.get(job_id)).state


async def test_a_chain_runs_in_order_each_waiting_in_its_own_state(store: Store):
    a = (await store.enqueue(NewJob(kind="prices.ingest"))).id
    b, _ = await store.submit_after(NewJob(kind="patterns.analyze"), [a])
    c, _ = await store.submit_after(NewJob(kind="leaderboard.refresh"), [b.id])
    assert (b.state, c.state) == (JobState.WAITING, JobState.WAITING)
    await run_one(store, a)
    assert (
        await state(store, b.id) is JobState.QUEUED and await state(store, c.id) is JobState.WAITING
    )
    await run_one(store, b.id)
    await run_one(store, c.id)
    assert await store.claim(["default"], 10, "w", 30) == []


async def test_a_diamond_waits_for_both_sides(store: Store):
    root = (await store.enqueue(NewJob(kind="k"))).id
    left, _ = await store.submit_after(NewJob(kind="k"), [root])
    right, _ = await store.submit_after(NewJob(kind="k"), [root])
    join, _ = await store.submit_after(NewJob(kind="k"), [left.id, right.id])
    await run_one(store, root)
    first, second = await store.claim(["default"], 10, "w", 30)
    assert {first.id, second.id} == {left.id, right.id}
    assert await store.complete(first, Success(None))
    assert await state(store, join.id) is JobState.WAITING  # one side is not enough
    assert await store.complete(second, Success(None))
    assert await state(store, join.id) is JobState.QUEUED


async def test_a_dead_parent_cancels_its_dependants_and_theirs_naming_it(store: Store):
    parent = (await store.enqueue(NewJob(kind="k", max_attempts=1))).id
    child, _ = await store.submit_after(NewJob(kind="k"), [parent])
    grandchild, _ = await store.submit_after(NewJob(kind="k"), [child.id])
    await run_one(store, parent, Failure("RuntimeError", "boom"))
    for job_id in (child.id, grandchild.id):
        job = await store.get(job_id)
        assert job.state is JobState.CANCELLED and job.finished_at is not None
        assert job.errors[-1]["type"] == "ParentFailed"
    assert (await store.get(child.id)).errors[-1]["message"] == (
        f"job {parent} it depends on ended dead"
    )
    assert (await store.get(grandchild.id)).errors[-1]["message"] == (
        f"job {child.id} it depends on ended cancelled"
    )
    events = await store.events(child.id)
    assert [e.type for e in events if e.type == "cancelled"] == ["cancelled"]


async def test_cancelling_a_queued_parent_cancels_what_waits_and_a_waiting_job_cancels(store):
    parent = (await store.enqueue(NewJob(kind="k"))).id
    child, _ = await store.submit_after(NewJob(kind="k"), [parent])
    other, _ = await store.submit_after(NewJob(kind="k"), [parent])
    result = await store.cancel(other.id, by="key:alice")  # a waiting job itself
    assert result.state is JobState.CANCELLED
    await store.cancel(parent, by="key:alice")
    assert await state(store, child.id) is JobState.CANCELLED


async def test_parents_must_exist_be_visible_and_able_to_succeed(store: Store):
    mine = (await store.enqueue(NewJob(kind="k", owner="key:alice"))).id
    theirs = (await store.enqueue(NewJob(kind="k", owner="key:bob"))).id
    with pytest.raises(JobNotFound):
        await store.submit_after(
            NewJob(kind="k", owner="key:alice"), [mine, theirs], visible_to="key:alice"
        )
    with pytest.raises(JobNotFound):
        await store.submit_after(NewJob(kind="k"), [10**12])
    await store.cancel(mine)
    with pytest.raises(ParentFailed, match=f"job {mine} is cancelled"):
        await store.submit_after(NewJob(kind="k"), [mine])
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'waiting'") == 0
    # parents that have all succeeded already: queued at once
    done = (await store.enqueue(NewJob(kind="k", queue="q"))).id
    [claimed] = await store.claim(["q"], 1, "w", 30)
    assert await store.complete(claimed, Success(None))
    now, _ = await store.submit_after(NewJob(kind="k"), [done])
    assert now.state is JobState.QUEUED


async def test_two_parents_finishing_at_once_release_their_child_once(db_url, queue_settings):
    """Each release starts after its own parent's finish has committed, so one of the two
    sees both parents succeeded; the child is queued once, with one ready row."""
    stores = [await Store.connect(db_url, settings=queue_settings) for _ in range(2)]
    try:
        for _ in range(15):
            a = (await stores[0].enqueue(NewJob(kind="k", queue="p"))).id
            b = (await stores[0].enqueue(NewJob(kind="k", queue="p"))).id
            child, _ = await stores[0].submit_after(NewJob(kind="k", queue="c"), [a, b])
            claimed = await stores[0].claim(["p"], 2, "w", 30)
            assert len(claimed) == 2
            await asyncio.gather(
                *(s.complete(j, Success(None)) for s, j in zip(stores, claimed, strict=True))
            )
            assert await state(stores[0], child.id) is JobState.QUEUED
            ready = await stores[0].pool.fetchval(
                "SELECT count(*) FROM job_ready WHERE id = $1", child.id
            )
            assert ready == 1
            [run] = await stores[0].claim(["c"], 5, "w", 30)
            assert run.id == child.id
            assert await stores[0].complete(run, Success(None))
    finally:
        for s in stores:
            await s.close()


async def test_the_sweep_releases_what_a_lost_release_left_waiting(store: Store):
    parent = (await store.enqueue(NewJob(kind="k"))).id
    child, _ = await store.submit_after(NewJob(kind="k"), [parent])
    # the parent's worker died between its finish and the release: simulated by finishing
    # the row as the finish statement does, without the release that follows it
    await store.pool.execute(
        "UPDATE job SET state = 'succeeded', finished_at = now() WHERE id = $1", parent
    )
    await store.pool.execute("DELETE FROM job_ready WHERE id = $1", parent)
    assert await state(store, child.id) is JobState.WAITING
    released, cancelled = await store.sweep_waiting()
    assert (released, cancelled) == ([child.id], [])
    assert await state(store, child.id) is JobState.QUEUED
    [claimed] = await store.claim(["default"], 5, "w", 30)
    assert claimed.id == child.id
