"""Rate limits per kind (migration 0017): at most N starts in any window, for the kind, per
owner or per payload field, against real Postgres with concurrent claims. Time is the
claim's `now`, so the windows are exact and the tests do not sleep."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from jobs.model import NewJob, RateLimit
from jobs.store import Store
from jobs.transitions import Success

T0 = datetime(2030, 1, 1, tzinfo=UTC)  # after every job's run_at


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def claim_at(store: Store, seconds: float, limit: int = 100) -> list:
    return await store.claim(["default"], limit, "w", 3600, now=at(seconds))


async def test_a_kind_rate_counts_starts_over_a_sliding_window(store: Store):
    await store.control_kind("ingest", by="test", rate=RateLimit(allowed=5, period_s=10))
    await store.enqueue_many([NewJob(kind="ingest") for _ in range(20)])
    assert len(await claim_at(store, 0, limit=3)) == 3
    assert len(await claim_at(store, 5)) == 2  # 5 in the window
    held = await claim_at(store, 9.9)
    assert held == [] and held.opens_in_s == pytest.approx(0.1, abs=1e-6)
    assert len(await claim_at(store, 10.001)) == 3  # the first three left the window
    assert len(await claim_at(store, 14.9)) == 0
    assert len(await claim_at(store, 15.001)) == 2
    states = await store.pool.fetch(
        "SELECT state, attempt, count(*) AS n FROM job GROUP BY state, attempt ORDER BY state"
    )
    # the jobs over the rate wait, queued, with no attempt used
    assert [tuple(r) for r in states] == [("queued", 0, 10), ("running", 1, 10)]


async def test_a_rate_lets_other_kinds_of_the_queue_run(store: Store):
    await store.control_kind("ingest", by="test", rate=RateLimit(allowed=2, period_s=60))
    await store.enqueue_many([NewJob(kind="ingest") for _ in range(10)])
    await store.enqueue_many([NewJob(kind="other") for _ in range(10)])
    claimed = await claim_at(store, 0)
    assert Counter(j.kind for j in claimed) == {"ingest": 2, "other": 10}
    assert claimed.opens_in_s == pytest.approx(60)


async def test_a_rate_per_owner_gives_each_owner_its_own_window(store: Store):
    rate = RateLimit(allowed=2, period_s=60, partition="owner")
    await store.control_kind("opt", by="test", rate=rate)
    for owner in ("key:a", "key:b", "key:c"):
        await store.enqueue_many([NewJob(kind="opt", owner=owner) for _ in range(5)])
    first = await claim_at(store, 0)
    assert Counter(j.owner for j in first) == {"key:a": 2, "key:b": 2, "key:c": 2}
    assert await claim_at(store, 30) == []
    assert Counter(j.owner for j in await claim_at(store, 61)) == {
        "key:a": 2,
        "key:b": 2,
        "key:c": 2,
    }


async def test_a_rate_per_payload_field_limits_each_provider(store: Store):
    """prices.ingest with provider yahoo at most 2 a minute (and every other provider too);
    jobs without the field share one window."""
    rate = RateLimit(allowed=2, period_s=60, partition="payload.provider")
    await store.control_kind("prices.ingest", by="test", rate=rate)
    for payload in ({"provider": "yahoo"}, {"provider": "stooq"}, {}):
        await store.enqueue_many([NewJob(kind="prices.ingest", payload=payload) for _ in range(4)])
    claimed = await claim_at(store, 0)
    assert Counter(j.payload.get("provider") for j in claimed) == {
        "yahoo": 2,
        "stooq": 2,
        None: 2,
    }
    windows = await store.pool.fetch(
        "SELECT part, starts_n FROM rate_window WHERE kind = 'prices.ingest' ORDER BY part"
    )
    assert [(w["part"], w["starts_n"]) for w in windows] == [
        ("", [2]),
        ("stooq", [2]),
        ("yahoo", [2]),
    ]


async def test_concurrent_claims_from_many_workers_never_pass_a_rate(store: Store, db_url: str):
    await store.control_kind("k", by="test", rate=RateLimit(allowed=7, period_s=3600))
    await store.enqueue_many([NewJob(kind="k") for _ in range(200)])
    stores = [await Store.connect(db_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(s.claim(["default"], 10, f"w{i}", 30) for i in range(3) for s in stores)
        )
    finally:
        for s in stores:
            await s.close()
    assert sum(len(r) for r in results) == 7
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'running'") == 7


async def test_a_rate_with_a_concurrency_limit_keeps_both(store: Store):
    await store.control_kind(
        "k", by="test", concurrency=3, rate=RateLimit(allowed=5, period_s=60, partition="owner")
    )
    await store.enqueue_many([NewJob(kind="k", owner="key:a") for _ in range(10)])
    first = await claim_at(store, 0)
    assert len(first) == 3  # the concurrency limit binds first
    for job in first:
        assert await store.complete(job, Success(None))
    assert len(await claim_at(store, 1)) == 2  # then the rate: 3 of 5 used
    assert await claim_at(store, 2) == []


async def test_lifting_a_rate_frees_its_waiting_jobs_and_keeps_the_other_limits(store: Store):
    await store.control_kind(
        "k", by="test", owner_concurrency=50, rate=RateLimit(allowed=1, period_s=60)
    )
    await store.enqueue_many([NewJob(kind="k") for _ in range(10)])
    assert len(await claim_at(store, 0)) == 1
    row = await store.control_kind("k", by="test", rate=None)
    assert row["rate_allowed"] is None and row["owner_concurrency"] == 50
    assert len(await claim_at(store, 1)) == 9


async def test_a_changed_rate_applies_to_the_next_claim(store: Store):
    await store.control_kind("k", by="test", rate=RateLimit(allowed=2, period_s=60))
    await store.enqueue_many([NewJob(kind="k") for _ in range(10)])
    assert len(await claim_at(store, 0)) == 2
    await store.control_kind("k", by="test", rate=RateLimit(allowed=5, period_s=60))
    assert len(await claim_at(store, 1)) == 3  # the two started count against the new rate
