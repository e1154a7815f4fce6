"""Unique while active and debounce, on real Postgres with concurrent submissions and
claims: a unique key dedupes only while its job is queued or running; a debounce replaces a
queued job's payload and pushes its start back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jobs.model import JobState, NewJob
from jobs.store import Store
from jobs.transitions import Success


def refresh(owner: str = "key:alice", **kw) -> NewJob:
    return NewJob(kind="leaderboard.refresh", owner=owner, unique_key="refresh", **kw)


async def test_a_unique_key_dedupes_while_queued_and_running_and_frees_when_done(store: Store):
    first, outcome = await store.submit_unique(refresh())
    assert outcome == "new" and first.unique_key == "refresh"
    again, outcome = await store.submit_unique(refresh(payload={"limit": 3}))
    assert (again.id, outcome) == (first.id, "existing")
    assert again.payload == {}  # without a debounce the queued job is left as it is
    other, outcome = await store.submit_unique(refresh(owner="key:bob"))  # keys are per owner
    assert outcome == "new" and other.id != first.id

    [claimed] = await store.claim(["default"], 1, "w", 30)
    assert claimed.id == first.id
    running, outcome = await store.submit_unique(refresh())
    assert (running.id, outcome, running.state) == (first.id, "existing", JobState.RUNNING)

    assert await store.complete(claimed, Success(None))
    fresh, outcome = await store.submit_unique(refresh())
    assert outcome == "new" and fresh.id != first.id  # the key is free again once it is done


async def test_concurrent_submissions_of_one_key_make_one_job(store: Store):
    results = await asyncio.gather(*(store.submit_unique(refresh()) for _ in range(20)))
    ids = {job.id for job, _ in results}
    assert len(ids) == 1
    assert sorted(outcome for _, outcome in results) == ["existing"] * 19 + ["new"]
    assert await store.pool.fetchval("SELECT count(*) FROM job") == 1
    assert await store.pool.fetchval("SELECT count(*) FROM job_ready") == 1


async def test_a_debounce_takes_the_last_payload_and_pushes_the_start_back(store: Store):
    before = datetime.now(UTC)
    first, outcome = await store.submit_unique(refresh(payload={"limit": 1}, debounce_s=30))
    assert outcome == "new" and first.run_at >= before + timedelta(seconds=29)
    await asyncio.sleep(0.2)
    second, outcome = await store.submit_unique(refresh(payload={"limit": 2}, debounce_s=30))
    assert (second.id, outcome) == (first.id, "debounced")
    assert second.payload == {"limit": 2} and second.run_at > first.run_at
    ready = await store.pool.fetchval("SELECT run_at FROM job_ready WHERE id = $1", first.id)
    assert ready == second.run_at  # the claim order moves with it
    assert await store.claim(["default"], 5, "w", 30) == []  # not due yet
    later = second.run_at + timedelta(seconds=1)
    [claimed] = await store.claim(["default"], 5, "w", 30, now=later)
    assert claimed.payload == {"limit": 2}
    # running: a debounce leaves it alone and answers with it
    third, outcome = await store.submit_unique(refresh(payload={"limit": 3}, debounce_s=30))
    assert (third.id, outcome) == (first.id, "existing")


@pytest.mark.parametrize("rounds", [40])
async def test_debounces_racing_claims_neither_deadlock_nor_lose_a_job(store: Store, rounds):
    """Debounces lock a job's ready row before its job row, as a claim does."""
    await store.submit_unique(refresh(payload={"n": 0}, debounce_s=0))
    made = 1

    async def debounce() -> None:
        nonlocal made
        for n in range(rounds):
            _, outcome = await store.submit_unique(refresh(payload={"n": n}, debounce_s=0))
            made += outcome == "new"
            await asyncio.sleep(0)

    async def claim() -> int:
        done = 0
        for _ in range(rounds):
            for job in await store.claim(["default"], 5, "w", 30):
                assert await store.complete(job, Success(None))
                done += 1
            await asyncio.sleep(0.001)
        return done

    _, _, done = await asyncio.wait_for(asyncio.gather(debounce(), debounce(), claim()), 60)
    rest = await store.claim(["default"], 5, "w", 30)
    for job in rest:
        assert await store.complete(job, Success(None))
    total = await store.pool.fetchval("SELECT count(*) FROM job")
    assert total == made == done + len(rest)  # each job made ran once; none was lost
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE state <> 'succeeded'") == 0


async def test_a_batch_with_a_unique_key_is_refused(store: Store):
    with pytest.raises(ValueError, match="one at a time"):
        await store.enqueue_many([refresh()])
    enqueued = await store.enqueue(refresh())
    assert (await store.enqueue(refresh())).id == enqueued.id
    assert (await store.enqueue(refresh())).duplicate
