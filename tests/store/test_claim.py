import asyncio
import random
from datetime import UTC, datetime, timedelta

from jobs.model import JobState, NewJob
from jobs.store import _usable
from tests.support import eventually


async def test_claim_order_is_priority_then_turn(store):
    """One owner's jobs that are due come in the order they became ready, highest priority
    first: a start set in the past is no way to jump the line (that is what priority is)."""
    base = datetime.now(UTC) - timedelta(minutes=10)
    specs = [(0, 5), (5, 9), (5, 1), (0, 1), (-3, 0), (5, 1)]  # (priority, minutes after base)
    ids = [
        (await store.enqueue(NewJob(kind="k", priority=p, run_at=base + timedelta(minutes=m)))).id
        for p, m in specs
    ]
    claimed = await store.claim(["default"], 100, "w", 30)
    expected = sorted(range(len(specs)), key=lambda i: (-specs[i][0], i))
    assert [j.id for j in claimed] == [ids[i] for i in expected]


async def test_a_job_due_later_goes_first_once_due(store):
    """A delayed job (or a retry's backoff) takes no turn while it waits; once due it goes
    ahead of the jobs already ready at its priority, as a job arriving now would go near the
    head, instead of behind every job that was ready before."""
    soon = datetime.now(UTC) + timedelta(seconds=30)
    later = await store.enqueue(NewJob(kind="k", run_at=soon))
    ready = [(await store.enqueue(NewJob(kind="k"))).id for _ in range(3)]
    first = await store.claim(["default"], 1, "w", 30)
    assert [j.id for j in first] == ready[:1]
    claimed = await store.claim(["default"], 10, "w", 30, now=soon + timedelta(seconds=1))
    assert [j.id for j in claimed] == [later.id, *ready[1:]]


async def test_claim_sets_the_lease_and_counts_the_attempt(store):
    enq = await store.enqueue(NewJob(kind="k"))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    [job] = await store.claim(["default"], 1, "worker-a", 30, now=now)
    assert job.id == enq.id and (await store.get(job.id)).state is JobState.RUNNING
    assert (job.attempt, job.lease_owner) == (1, "worker-a")
    assert job.lease_expires_at == now + timedelta(seconds=30)
    assert job.started_at == now


async def test_claim_skips_future_jobs_other_queues_and_respects_the_limit(store):
    await store.enqueue(NewJob(kind="k", run_at=datetime.now(UTC) + timedelta(hours=1)))
    await store.enqueue(NewJob(kind="k", queue="other"))
    await store.enqueue_many([NewJob(kind="k") for _ in range(5)])
    assert len(await store.claim(["default"], 3, "w", 30)) == 3
    assert len(await store.claim(["default"], 3, "w", 30)) == 2
    assert await store.claim(["default"], 3, "w", 30) == []
    [other] = await store.claim(["nope", "other"], 3, "w", 30)
    assert other.queue == "other"


async def test_claim_across_queues_never_exceeds_the_limit(store):
    for q in ("a", "b", "c"):
        await store.enqueue_many([NewJob(kind="k", queue=q) for _ in range(4)])
    claimed = await store.claim(["a", "b", "c"], 6, "w", 30)
    assert len(claimed) == 6
    assert [j.queue for j in claimed] == ["a"] * 4 + ["b"] * 2


async def test_eight_concurrent_claimers_claim_every_job_exactly_once(store):
    total = 5000
    await store.enqueue_many([NewJob(kind="k", payload={"i": i}) for i in range(total)])
    start = asyncio.Event()

    async def claimer(n: int) -> list[int]:
        rng = random.Random(n)
        got: list[int] = []
        await start.wait()
        while True:
            batch = await store.claim(["default"], rng.randint(1, 60), f"w{n}", 30)
            if not batch:
                # Skipped rows may still be locked by a peer that is about to commit; only
                # stop when the database agrees nothing is queued.
                if not await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'queued'"):
                    return got
                continue
            got.extend(j.id for j in batch)

    tasks = [asyncio.create_task(claimer(n)) for n in range(8)]
    start.set()
    results = await asyncio.gather(*tasks)
    all_ids = [i for r in results for i in r]
    assert len(all_ids) == total and len(set(all_ids)) == total  # none missed, none twice
    assert sum(1 for r in results if r) >= 2  # the work really was shared
    rows = await store.pool.fetch(
        "SELECT state, attempt, lease_owner, count(*) AS n FROM job GROUP BY 1, 2, 3"
    )
    assert all(r["state"] == "running" and r["attempt"] == 1 for r in rows)
    owners = {r["lease_owner"]: r["n"] for r in rows}
    for n, ids in enumerate(results):
        assert owners.get(f"w{n}", 0) == len(ids)  # the database agrees on who holds what


async def test_claims_recover_when_their_kept_connection_dies_and_leave_the_pool_as_it_was(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(3)])
    assert len(await store.claim(["default"], 1, "w", 30)) == 1
    kept = store._claimer.conn
    assert kept is not None and await kept.fetchval("SHOW enable_seqscan") == "off"
    async with store.pool.acquire() as other:  # the pool's others plan as usual
        assert await other.fetchval("SHOW enable_seqscan") == "on"
        assert await other.fetchval("SELECT pg_terminate_backend($1)", kept.get_server_pid())
    await eventually(lambda: not _usable(kept), 5)  # asyncpg has seen it close
    assert len(await store.claim(["default"], 1, "w", 30)) == 1  # no error: a fresh one
    fresh = store._claimer.conn
    assert fresh is not None and fresh is not kept
    assert await fresh.fetchval("SHOW enable_seqscan") == "off"
    assert len(await store.claim(["default"], 5, "w", 30)) == 1
