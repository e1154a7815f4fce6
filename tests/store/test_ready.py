"""`job_ready`, what claims read: every queued job has its row, the halves rotate by
TRUNCATE without losing one, and a claim's cost stays flat while vacuum is held back."""

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobs import sql
from jobs.model import JobState, NewJob
from jobs.ready import Rotation
from jobs.settings import DatabaseSettings, QueueSettings
from jobs.store import Store
from jobs.transitions import Failure, Snoozed, decide

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def small(db_url):
    """A store whose halves rotate after about 64 jobs, whether or not the vacuum horizon is
    held back."""
    s = await Store.connect(
        db_url,
        settings=QueueSettings(
            ready_rotate_rows=64, ready_move_rows=50, ready_rotate_held_s=0, backoff_jitter=0
        ),
        db=DatabaseSettings(db_pool_min=1, db_pool_max=20),
    )
    try:
        yield s
    finally:
        await s.close()


async def ready_ids(store) -> list[int]:
    return await store.pool.fetchval(
        "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM job_ready"
    )


async def half_sizes(store) -> tuple[int, int, int]:
    row = await store.pool.fetchrow(sql.READY_STATE)
    return row["current"], row["bytes_0"], row["bytes_1"]


async def test_every_way_into_queued_writes_a_ready_row(store):
    one = await store.enqueue(NewJob(kind="k"))
    many = await store.enqueue_many([NewJob(kind="k") for _ in range(2)])
    job, _ = await store.submit(NewJob(kind="k"))
    assert await ready_ids(store) == [one.id, many[0].id, many[1].id, job.id]
    claimed = await store.claim(["default"], 10, "w", 30, now=T0)
    assert await ready_ids(store) == []
    snooze = decide(
        attempt=1, max_attempts=5, outcome=Snoozed(5.0), now=T0, backoff=store.settings.backoff()
    )
    fail = decide(
        attempt=1,
        max_attempts=1,
        outcome=Failure("ValueError", "x"),
        now=T0,
        backoff=store.settings.backoff(),
    )
    await store.finish_many([(claimed[0].lease, snooze), (claimed[1].lease, fail)], now=T0)
    assert await ready_ids(store) == [one.id]  # snoozed back to queued; the other is dead
    await store.retry(many[0].id)
    assert await ready_ids(store) == [one.id, many[0].id]
    expired = await store.reap(now=T0 + timedelta(seconds=31))  # the two still running
    assert {r.state for r in expired} == {JobState.QUEUED}
    assert await ready_ids(store) == sorted([one.id, many[0].id, many[1].id, job.id])


async def test_a_ready_row_left_by_a_cancel_claims_nothing_and_a_replay_runs_once(store):
    enq = await store.enqueue(NewJob(kind="k"))
    await store.cancel(enq.id)
    assert await ready_ids(store) == [enq.id]  # left behind on purpose: claims clear it
    assert await store.claim(["default"], 10, "w", 30) == []
    assert await ready_ids(store) == []

    again = await store.enqueue(NewJob(kind="k"))
    await store.cancel(again.id)
    await store.retry(again.id)
    assert await ready_ids(store) == [again.id, again.id]  # the stale row and the replay's
    [job] = await store.claim(["default"], 10, "w", 30)
    assert (job.id, job.attempt) == (again.id, 1)
    assert await store.claim(["default"], 10, "w", 30) == []


async def test_claims_read_both_halves_in_one_order(store):
    base = datetime.now(UTC) - timedelta(minutes=10)
    first = await store.enqueue(NewJob(kind="k", run_at=base + timedelta(minutes=2)))
    await store.pool.execute(sql.SET_CURRENT_HALF, 1)
    urgent = await store.enqueue(NewJob(kind="k", priority=5, run_at=base + timedelta(minutes=3)))
    older = await store.enqueue(NewJob(kind="k", run_at=base))  # due before, ready after
    halves = await store.pool.fetch("SELECT id, generation FROM job_ready ORDER BY id")
    assert [r["generation"] for r in halves] == [0, 1, 1]
    claimed = await store.claim(["default"], 2, "w", 30)
    assert [j.id for j in claimed] == [urgent.id, first.id]  # priority, then turn
    assert [j.id for j in await store.claim(["default"], 2, "w", 30)] == [older.id]


async def test_nothing_rotates_while_no_snapshot_holds_vacuum_back(store, db_url):
    await store.enqueue_many([NewJob(kind="k") for _ in range(5000)])
    while await store.claim(["default"], 1000, "w", 30):
        pass
    assert await store.rotate_ready() is Rotation.WAIT  # 5,000 dead rows, nothing held
    pinned = await asyncpg.connect(db_url)
    try:
        await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await pinned.fetchval("SELECT count(*) FROM job")
        # Dead rows made after the snapshot, which vacuum may not remove while it is held
        # (the ones before it it may: an autovacuum in the wait could truncate them away).
        await store.enqueue_many([NewJob(kind="k") for _ in range(5000)])
        while await store.claim(["default"], 1000, "w", 30):
            pass
        await asyncio.sleep(store.settings.ready_rotate_held_s + 0.1)
        assert await store.rotate_ready() is Rotation.ROTATE
    finally:
        await pinned.close()


async def test_a_drained_half_is_truncated_and_made_current(small):
    assert await small.rotate_ready() is Rotation.WAIT  # nothing taken in yet
    await small.enqueue_many([NewJob(kind="k") for _ in range(300)])
    assert (await half_sizes(small))[0] == 0
    assert await small.rotate_ready() is Rotation.ROTATE  # the other half is empty already
    assert (await half_sizes(small))[0] == 1
    await small.enqueue_many([NewJob(kind="k") for _ in range(10)])
    while await small.claim(["default"], 100, "w", 30):
        pass
    # Half 0 held 300 rows, all claimed now: emptied, and current again.
    assert await small.rotate_ready() is Rotation.ROTATE
    current, bytes_0, _ = await half_sizes(small)
    assert (current, bytes_0) == (0, 0)


async def test_rows_left_in_the_draining_half_are_moved_not_lost(small):
    later = datetime.now(UTC) + timedelta(hours=1)
    delayed = await small.enqueue_many([NewJob(kind="k", run_at=later) for _ in range(20)])
    await small.enqueue_many([NewJob(kind="k") for _ in range(300)])
    await small.pool.execute(sql.SET_CURRENT_HALF, 1)
    await small.enqueue_many([NewJob(kind="k") for _ in range(300)])
    while await small.claim(["default"], 100, "w", 30):
        pass
    cancelled = await small.enqueue(NewJob(kind="k", run_at=later))  # lands in half 1
    await small.cancel(cancelled.id)
    # Half 0 keeps only the 20 delayed jobs: moved to half 1, then half 0 is emptied.
    assert await small.rotate_ready() is Rotation.ROTATE
    rows = await small.pool.fetch("SELECT id, generation FROM job_ready ORDER BY id")
    assert [r["id"] for r in rows] == [e.id for e in delayed] + [cancelled.id]
    assert {r["generation"] for r in rows} == {1}
    claimed = await small.claim(["default"], 100, "w", 30, now=later)
    assert sorted(j.id for j in claimed) == [e.id for e in delayed]


async def test_a_backlog_is_moved_only_once_as_much_was_claimed_out_of_its_half(small):
    await small.enqueue_many([NewJob(kind="k") for _ in range(600)])
    await small.pool.execute(sql.SET_CURRENT_HALF, 1)
    await small.enqueue_many([NewJob(kind="k") for _ in range(100)])
    assert await small.rotate_ready() is Rotation.WAIT  # 600 left, more than 50, none claimed
    await small.claim(["default"], 150, "w", 30)
    assert await small.rotate_ready() is Rotation.WAIT  # 150 claimed out, 450 left
    await small.claim(["default"], 200, "w", 30)
    # 350 claimed out, 250 left: moved (in one batch of up to 2,000), then rotated.
    assert await small.rotate_ready() is Rotation.ROTATE
    left = await small.pool.fetchval("SELECT count(*) FROM job_ready")
    assert left == 350 and (await half_sizes(small))[1] == 0


async def test_a_half_with_an_uncommitted_insert_is_not_truncated(small, db_url):
    await small.enqueue_many([NewJob(kind="k") for _ in range(300)])
    while await small.claim(["default"], 100, "w", 30):
        pass
    app = await asyncpg.connect(db_url)  # an application enqueueing in its own transaction
    try:
        tx = app.transaction()
        await tx.start()
        enq = await small.enqueue(NewJob(kind="k"), conn=app)  # into half 0, not committed
        await small.pool.execute(sql.SET_CURRENT_HALF, 1)
        await small.enqueue_many([NewJob(kind="k") for _ in range(300)])
        assert await small.rotate_ready() is Rotation.WAIT  # could not lock half 0
        await tx.commit()
    finally:
        await app.close()
    claimed = await small.claim(["default"], 1000, "w", 30)
    assert enq.id in {j.id for j in claimed} and len(claimed) == 301


async def test_rotating_while_many_enqueue_and_claim_loses_and_repeats_nothing(small):
    """Real concurrent transactions: four enqueuers, four claimers and two rotators."""
    total, done = 8000, asyncio.Event()
    claimed: list[int] = []

    async def enqueuer(n: int) -> None:
        rng = random.Random(n)
        for _ in range(total // 4 // 50):
            if rng.random() < 0.5:
                await small.enqueue_many([NewJob(kind="k") for _ in range(50)])
            else:
                for _ in range(50):
                    await small.enqueue(NewJob(kind="k"))

    async def claimer(n: int) -> None:
        rng = random.Random(100 + n)
        while not done.is_set() or await small.pool.fetchval("SELECT count(*) FROM job_ready"):
            batch = await small.claim(["default"], rng.randint(1, 80), f"w{n}", 30)
            claimed.extend(j.id for j in batch)
            if not batch:
                await asyncio.sleep(0.005)

    async def rotator() -> list[Rotation]:
        steps = []
        while not done.is_set():
            steps.append(await small.rotate_ready())
            await asyncio.sleep(0.01)
        return steps

    claimers = [asyncio.create_task(claimer(n)) for n in range(4)]
    rotators = [asyncio.create_task(rotator()) for _ in range(2)]
    await asyncio.gather(*(enqueuer(n) for n in range(4)))
    done.set()
    await asyncio.gather(*claimers)
    steps = [s for r in await asyncio.gather(*rotators) for s in r]
    assert len(claimed) == total and len(set(claimed)) == total
    assert await small.pool.fetchval("SELECT count(*) FROM job WHERE state = 'running'") == total
    assert steps.count(Rotation.ROTATE) >= 10  # it did rotate, many times


async def test_a_claim_reads_no_more_pages_after_many_jobs_under_a_held_horizon(small, db_url):
    """With a REPEATABLE READ session open, nothing a claim deletes can be vacuumed; the
    claim's pages read stay bounded by the rotation size, not by the jobs claimed since."""
    pinned = await asyncpg.connect(db_url)
    try:
        await pinned.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await pinned.fetchval("SELECT count(*) FROM job")
        reads = []
        for _ in range(20):
            await small.enqueue_many([NewJob(kind="k") for _ in range(1000)])
            while await small.claim(["default"], 100, "w", 30):
                while await small.rotate_ready() is not Rotation.WAIT:
                    pass
            await small.enqueue_many([NewJob(kind="k") for _ in range(100)])
            reads.append(await claim_buffers(small))
            await small.claim(["default"], 100, "w", 30)
        assert await pinned.fetchval("SELECT count(*) FROM job") == 0  # still pinned
    finally:
        await pinned.close()
    # 21,000 jobs claimed; the claim reads about as many pages at the end as at the start.
    # (Claiming from `job` itself, it read some 20,000 more: one per job claimed since.)
    assert max(reads[-5:]) <= 1.25 * max(reads[:5]), reads


async def claim_buffers(store) -> int:
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql.CLAIM,
                "default",
                100,
                "w",
                30.0,
                None,
            )
        finally:
            await tx.rollback()
    top = json.loads(rows[0][0])[0]["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"]
