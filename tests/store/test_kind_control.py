"""Limits per kind and per owner within a kind (migration 0016), against real Postgres with
concurrent claims."""

from __future__ import annotations

import asyncio
from collections import Counter

from jobs.model import NewJob
from jobs.store import Store
from jobs.transitions import Success


async def running(store: Store, **where: str) -> int:
    clause = "".join(f" AND {k} = '{v}'" for k, v in where.items())
    return await store.pool.fetchval(f"SELECT count(*) FROM job WHERE state = 'running'{clause}")


async def test_a_kind_limit_holds_while_other_kinds_in_the_queue_run_freely(store: Store):
    await store.enqueue_many([NewJob(kind="slow") for _ in range(50)])
    await store.control_kind("slow", by="test", concurrency=3)
    await store.enqueue_many([NewJob(kind="slow") for _ in range(50)])  # straight to its lane
    await store.enqueue_many([NewJob(kind="fast") for _ in range(40)])
    claimed = await store.claim(["default"], 100, "w", 30)
    kinds = Counter(j.kind for j in claimed)
    assert kinds == {"slow": 3, "fast": 40}
    assert await store.claim(["default"], 100, "w", 30) == []
    [slow, *_] = [j for j in claimed if j.kind == "slow"]
    assert await store.complete(slow, Success(None))
    again = await store.claim(["default"], 100, "w", 30)
    assert [j.kind for j in again] == ["slow"]


async def test_concurrent_claims_never_pass_a_kind_limit(store: Store):
    await store.control_kind("k", by="test", concurrency=5)
    await store.enqueue_many([NewJob(kind="k") for _ in range(200)])
    results = await asyncio.gather(*(store.claim(["default"], 10, f"w{i}", 30) for i in range(8)))
    assert sum(len(r) for r in results) == 5 and await running(store, kind="k") == 5


async def test_per_owner_limit_inside_a_kind(store: Store):
    await store.control_kind("opt", by="test", owner_concurrency=2)
    await store.enqueue_many([NewJob(kind="opt", owner="key:a") for _ in range(100)])
    await store.enqueue_many([NewJob(kind="opt", owner="key:b") for _ in range(3)])
    claimed = await asyncio.gather(*(store.claim(["default"], 10, f"w{i}", 30) for i in range(4)))
    owners = Counter(j.id for r in claimed for j in r)
    assert len(owners) == 4
    rows = await store.pool.fetch(
        "SELECT owner, count(*) AS n FROM job WHERE state = 'running' GROUP BY owner"
    )
    assert {r["owner"]: r["n"] for r in rows} == {"key:a": 2, "key:b": 2}


async def test_a_job_readied_into_lane_0_after_the_limit_is_rerouted_not_run(store: Store):
    """An enqueue that read kind_control before the limit's commit puts its row in lane 0;
    the claim that meets it leaves the job queued and moves the row to the kind's lane."""
    await store.control_kind("k", by="test", concurrency=1)
    jobs = [(await store.enqueue(NewJob(kind="k"))).id for _ in range(3)]
    await store.pool.execute("UPDATE job_ready SET lane = 0")  # as if routed before the limit
    claimed = await store.claim(["default"], 10, "w", 30)
    assert len(claimed) <= 1
    assert sorted(await store.pool.fetch("SELECT lane FROM job_ready")) != []
    claimed += await store.claim(["default"], 10, "w", 30)
    assert len(claimed) == 1 and await running(store, kind="k") == 1
    lanes = await store.pool.fetch("SELECT id, lane FROM job_ready ORDER BY id")
    assert [r["id"] for r in lanes] == [j for j in jobs if j != claimed[0].id]
    assert all(r["lane"] != 0 for r in lanes)


async def test_lifting_a_kind_limit_keeps_its_lane_and_runs_everything(store: Store):
    await store.control_kind("k", by="test", concurrency=0)
    await store.enqueue_many([NewJob(kind="k") for _ in range(20)])
    assert await store.claim(["default"], 50, "w", 30) == []
    row = await store.control_kind("k", by="test", concurrency=None)
    assert row["concurrency"] is None and row["lane"] >= 1
    store._lanes = (-1.0, [])  # another worker would see it within the second
    assert len(await store.claim(["default"], 50, "w", 30)) == 20
    [control] = await store.kind_controls()
    assert (control["kind"], control["concurrency"]) == ("k", None)


async def test_claims_of_several_limited_queues_and_kinds_in_any_order_wait_never_deadlock(
    store: Store, db_url: str
):
    """Eight stores claim two limited queues in opposite orders, each with two limited kinds:
    every claim takes its control locks up front in one order, so they wait for each other
    (no deadlock, no lane passed over) and every limit holds at every moment."""
    await store.control_queue("a", by="test", concurrency=100)
    await store.control_queue("b", by="test", concurrency=100)
    await store.control_kind("k1", by="test", concurrency=40)
    await store.control_kind("k2", by="test", concurrency=40)
    for queue in ("a", "b"):
        for kind in ("k1", "k2", "free"):
            await store.enqueue_many([NewJob(kind=kind, queue=queue) for _ in range(100)])
    stores = [await Store.connect(db_url) for _ in range(8)]
    try:
        for _ in range(3):
            results = await asyncio.gather(
                *(
                    s.claim(["a", "b"] if i % 2 else ["b", "a"], 7, f"w{i}", 30)
                    for i, s in enumerate(stores)
                )
            )
            assert all(len(r) == 7 for r in results)  # no claim passed over a locked lane
    finally:
        for s in stores:
            await s.close()
    rows = await store.pool.fetch(
        "SELECT queue, kind, count(*) AS n FROM job WHERE state = 'running' GROUP BY 1, 2"
    )
    per_queue, per_kind = Counter(), Counter()
    for r in rows:
        per_queue[r["queue"]] += r["n"]
        per_kind[r["kind"]] += r["n"]
    assert sum(per_queue.values()) == 8 * 7 * 3 and max(per_queue.values()) <= 100
    assert per_kind["k1"] <= 40 and per_kind["k2"] <= 40
