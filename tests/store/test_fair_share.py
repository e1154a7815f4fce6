"""Fair share between owners (migration 0015): claims take turns, not submission order."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from jobs.model import NewJob
from jobs.store import Store
from jobs.transitions import Failure


def jobs(owner: str, n: int, **fields: object) -> list[NewJob]:
    return [NewJob(kind="k", owner=owner, **fields) for _ in range(n)]  # type: ignore[arg-type]


async def owners_of(store: Store, claimed: list) -> list[str]:
    ids = [j.id for j in claimed]
    rows = await store.pool.fetch("SELECT id, owner FROM job WHERE id = ANY($1)", ids)
    by_id = {r["id"]: r["owner"] for r in rows}
    return [by_id[i] for i in ids]


async def test_a_small_owner_starts_within_one_batch_behind_a_backlog(store: Store):
    await store.enqueue_many(jobs("key:a", 2000))
    await store.enqueue_many(jobs("key:b", 10))
    for _ in range(10):
        await store.enqueue(NewJob(kind="k", owner="key:c"))
    first = await owners_of(store, await store.claim(["default"], 40, "w", 30))
    counts = Counter(first)
    assert counts["key:b"] == 10 and counts["key:c"] == 10, counts
    # interleaved with the backlog's head, not ahead of all of it: a's first job came first
    assert first[0] == "key:a"


async def test_an_owner_who_comes_back_is_not_owed_its_idle_time(store: Store):
    """An owner's turn starts from the queue's current turn: jobs it did not have while it
    was away earn it nothing."""
    await store.enqueue_many(jobs("key:a", 500))
    await store.claim(["default"], 300, "w", 30)
    await store.enqueue_many(jobs("key:b", 500))
    first = Counter(await owners_of(store, await store.claim(["default"], 100, "w", 30)))
    assert abs(first["key:a"] - first["key:b"]) <= 2, first


async def test_weights_share_the_turns(store: Store):
    await store.set_share("key:a", 2, by="test")
    await store.enqueue_many(jobs("key:a", 600))
    await store.enqueue_many(jobs("key:b", 600))
    counts = Counter(await owners_of(store, await store.claim(["default"], 300, "w", 30)))
    assert 190 <= counts["key:a"] <= 210, counts  # 2:1
    assert await store.clear_share("key:a", by="test")
    assert not await store.clear_share("key:a", by="test")
    assert await store.shares() == []


async def test_priority_still_comes_first(store: Store):
    await store.enqueue_many(jobs("key:a", 100))
    urgent = await store.enqueue(NewJob(kind="k", owner="key:a", priority=5))
    [first] = await store.claim(["default"], 1, "w", 30)
    assert first.id == urgent.id


async def test_a_retry_takes_its_turn_when_due_ahead_of_the_backlog(store: Store):
    await store.enqueue(NewJob(kind="k", owner="key:b", max_attempts=3))
    [job] = await store.claim(["default"], 1, "w", 30)
    await store.enqueue_many(jobs("key:a", 300))
    assert await store.complete(job, Failure("E", "boom"))  # backoff: due in a second or so
    due = datetime.now(UTC) + timedelta(minutes=5)
    [first, *_] = await store.claim(["default"], 5, "w", 30, now=due)
    assert first.id == job.id
