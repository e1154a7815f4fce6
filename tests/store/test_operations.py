"""Cancel, retry, progress and retention."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jobs.errors import InvalidTransition, JobNotFound
from jobs.model import JobState, Lease, NewJob
from jobs.store import RetryFilter, Store
from jobs.transitions import Cancelled, Failure, Success

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def lease_of(job):
    return job.lease


async def _dead(store, kind="k", owner="system", queue="default"):
    enq = await store.enqueue(NewJob(kind=kind, owner=owner, queue=queue, max_attempts=1))
    [job] = await store.claim([queue], 1, "w", 30)
    assert await store.complete(job, Failure("E", "boom"))
    return enq.id


async def test_cancel_a_queued_job_cancels_it_at_once(store):
    enq = await store.enqueue(NewJob(kind="k"))
    result = await store.cancel(enq.id, by="alice")
    assert (result.previous, result.state, result.requested) == (
        JobState.QUEUED,
        JobState.CANCELLED,
        False,
    )
    job = await store.get(enq.id)
    assert job.state is JobState.CANCELLED and job.finished_at is not None
    [event] = await store.events(enq.id)
    assert (event.type, event.data) == ("cancelled", {"by": "alice"})
    assert await store.claim(["default"], 1, "w", 30) == []


async def test_cancel_a_running_job_asks_its_worker(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 30)
    result = await store.cancel(enq.id)
    assert result.requested and result.state is JobState.RUNNING
    again = await store.cancel(enq.id)  # a second request adds nothing
    assert again.requested
    assert [e.type for e in await store.events(enq.id)] == ["cancel_requested"]
    status = await store.extend_leases("w", [lease_of(job)], 30)
    assert status.cancel_requested == {job.lease}
    assert await store.complete(job, Cancelled("asked to"))
    assert (await store.get(enq.id)).state is JobState.CANCELLED


async def test_cancel_leaves_finished_jobs_alone_and_respects_owners(store):
    dead = await _dead(store)
    result = await store.cancel(dead)
    assert (result.previous, result.state) == (JobState.DEAD, JobState.DEAD)
    mine = await store.enqueue(NewJob(kind="k", owner="alice"))
    with pytest.raises(JobNotFound):
        await store.cancel(mine.id, owner="bob")
    with pytest.raises(JobNotFound):
        await store.cancel(999_999)
    assert (await store.get(mine.id)).state is JobState.QUEUED


async def test_retry_puts_a_dead_job_back_with_a_fresh_budget(store):
    job_id = await _dead(store)
    await store.pool.execute(
        "UPDATE job SET progress = 40, progress_message = 'half', result = '{\"x\": 1}', "
        "cancel_requested_at = now() WHERE id = $1",
        job_id,
    )
    await store.retry(job_id, by="ops", budget=3)
    job = await store.get(job_id)
    assert job.state is JobState.QUEUED and job.finished_at is None
    assert (job.progress, job.progress_message, job.result) == (0, None, None)
    assert job.cancel_requested_at is None
    assert (job.attempt, job.max_attempts) == (1, 4)  # three more attempts
    assert len(job.errors) == 1  # the history of failures is kept
    events = await store.events(job_id)
    assert events[-1].type == "retried" and events[-1].data == {"by": "ops", "budget": 3}
    [again] = await store.claim(["default"], 1, "w", 30)
    assert again.attempt == 2


async def test_retry_refuses_live_jobs_and_other_owners(store):
    enq = await store.enqueue(NewJob(kind="k", owner="alice"))
    with pytest.raises(InvalidTransition, match="queued"):
        await store.retry(enq.id)
    dead = await _dead(store, owner="alice")
    with pytest.raises(JobNotFound):
        await store.retry(dead, owner="bob")
    with pytest.raises(ValueError, match="budget"):
        await store.retry(dead, budget=0)


async def test_retry_many_replays_what_the_filter_matches(store):
    a = await _dead(store, kind="prices.ingest")
    b = await _dead(store, kind="prices.ingest", queue="prices")
    c = await _dead(store, kind="strategy.optimize")
    cancelled = (await store.enqueue(NewJob(kind="prices.ingest"))).id
    await store.cancel(cancelled)

    assert sorted(await store.retry_many(RetryFilter(kind="prices.ingest"), by="ops")) == [a, b]
    assert (await store.get(c)).state is JobState.DEAD
    assert (await store.get(cancelled)).state is JobState.CANCELLED
    both = RetryFilter(states=frozenset({JobState.DEAD, JobState.CANCELLED}))
    assert sorted(await store.retry_many(both)) == sorted([c, cancelled])
    assert await store.retry_many(RetryFilter()) == []


async def test_retry_many_filters_by_finish_time(store):
    cutoff = datetime.now(UTC) - timedelta(days=1)
    old = await _dead(store)
    await store.pool.execute(
        "UPDATE job SET finished_at = $2 WHERE id = $1", old, cutoff - timedelta(days=1)
    )
    new = await _dead(store)
    assert await store.retry_many(RetryFilter(finished_after=cutoff)) == [new]
    assert await store.retry_many(RetryFilter(finished_before=cutoff)) == [old]


async def test_progress_is_fenced_and_coalesced(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 30)
    lease = lease_of(job)
    for pct in range(1, 51):
        assert await store.report_progress(lease, pct, f"step {pct}", now=T0)
    events = await store.events(enq.id)
    assert len(events) == 1  # fifty reports in one interval: one row, holding the latest
    assert events[0].data == {"progress": 50, "message": "step 50", "attempt": 1}
    job = await store.get(enq.id)
    assert (job.progress, job.progress_message) == (50, "step 50")

    later = T0 + timedelta(seconds=store.settings.progress_event_interval_s + 0.5)
    assert await store.report_progress(lease, 60, "later", now=later)
    assert [e.data["progress"] for e in await store.events(enq.id)] == [50, 60]

    assert not await store.report_progress(Lease(enq.id, "intruder", 1), 99)
    assert (await store.get(enq.id)).progress == 60


async def test_prune_deletes_old_finished_jobs_and_their_events(store):
    store.settings.prune_batch = 2  # exercise the batching loop
    old_dead = [await _dead(store) for _ in range(3)]
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 30)
    await store.complete(job, Success())
    recent_dead = await _dead(store)
    running = (await store.enqueue(NewJob(kind="k"))).id
    await store.claim(["default"], 1, "w", 30)
    await store.pool.execute(
        "UPDATE job SET finished_at = now() - interval '10 days' WHERE id = ANY($1) OR id = $2",
        old_dead,
        enq.id,
    )
    deleted = await store.prune(
        {JobState.DEAD: timedelta(days=7), JobState.SUCCEEDED: timedelta(days=30)}
    )
    assert deleted == {JobState.DEAD: 3, JobState.SUCCEEDED: 0}
    left = {r["id"] for r in await store.pool.fetch("SELECT id FROM job")}
    assert left == {enq.id, recent_dead, running}
    orphans = await store.pool.fetchval(
        "SELECT count(*) FROM job_event e "
        "WHERE NOT EXISTS (SELECT 1 FROM job j WHERE j.id = e.job_id)"
    )
    assert orphans == 0
    with pytest.raises(ValueError, match="finished"):
        await store.prune({JobState.RUNNING: timedelta(days=1)})


async def test_get_is_scoped_to_the_owner(store):
    enq = await store.enqueue(NewJob(kind="k", owner="alice"))
    assert (await store.get(enq.id, owner="alice")).owner == "alice"
    with pytest.raises(JobNotFound):
        await store.get(enq.id, owner="bob")


async def test_cancel_racing_a_claim_never_leaves_a_cancelled_job_running(store, db_url):
    """Real concurrent transactions: whichever takes the row lock first, the end state is
    one the worker and the user both understand."""
    other = await Store.connect(db_url)
    try:
        ids = [e.id for e in await store.enqueue_many([NewJob(kind="k") for _ in range(200)])]
        claims = asyncio.create_task(_claim_all(other))
        cancels = [store.cancel(i) for i in ids[::2]]
        results = await asyncio.gather(*cancels)
        claimed = {j.id: j for j in await claims}
    finally:
        await other.close()
    for r in results:
        if r.previous is JobState.QUEUED:
            assert r.state is JobState.CANCELLED and r.job_id not in claimed
        else:
            assert r.previous is JobState.RUNNING and r.requested and r.job_id in claimed
    rows = await store.pool.fetch("SELECT id, state, cancel_requested_at FROM job")
    for row in rows:
        if row["state"] == "running":
            assert row["id"] in claimed
        else:
            assert row["state"] in ("queued", "cancelled")


async def _claim_all(store):
    got = []
    for _ in range(100):
        batch = await store.claim(["default"], 7, "racer", 60)
        got.extend(batch)
        await asyncio.sleep(0)
    return got


async def test_enqueue_many_reinserts_when_the_key_holder_was_pruned(store, monkeypatch):
    """The key's holder disappears between the insert and the lookup: the job is created.

    The prune is a real DELETE on a real connection, slotted in at the one moment the race
    needs; nothing about the database is simulated."""
    from jobs.store import Store

    first = await store.enqueue(NewJob(kind="k", idempotency_key="gone", owner="a"))
    jobs = [NewJob(kind="k", idempotency_key="gone", owner="a"), NewJob(kind="k")]
    original = Store._insert_many

    async def insert_then_prune(self, db, batch, **options):
        row = await original(self, db, batch, **options)
        await self.pool.execute("DELETE FROM job WHERE id = $1", first.id)
        monkeypatch.setattr(Store, "_insert_many", original)  # only the first call races
        return row

    monkeypatch.setattr(Store, "_insert_many", insert_then_prune)
    result = await store.enqueue_many(jobs)
    assert [r.duplicate for r in result] == [False, False]
    assert result[0].id != first.id
    assert (await store.get(result[0].id)).idempotency_key == "gone"
