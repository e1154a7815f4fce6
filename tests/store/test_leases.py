import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest

from jobs.backoff import Backoff
from jobs.model import EventType, JobState, Lease, NewJob
from jobs.transitions import Failure, Release, Snoozed, Success, decide

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def lease_of(job):
    return job.lease


async def test_extend_leases_moves_expiry_and_reports_cancel_requests(store):
    ids = [r.id for r in await store.enqueue_many([NewJob(kind="k") for _ in range(3)])]
    jobs = await store.claim(["default"], 3, "w1", 10, now=T0)
    await store.cancel(ids[1])
    status = await store.extend_leases(
        "w1", [lease_of(j) for j in jobs], 10, now=T0 + timedelta(seconds=5)
    )
    assert status.held == {j.lease for j in jobs}
    assert status.cancel_requested == {j.lease for j in jobs if j.id == ids[1]}
    expiries = await store.pool.fetch("SELECT lease_expires_at FROM job")
    assert {r["lease_expires_at"] for r in expiries} == {T0 + timedelta(seconds=15)}
    # someone else's worker id holds nothing
    other = await store.extend_leases("w2", [lease_of(j) for j in jobs], 10)
    assert other.held == frozenset()


async def test_reap_returns_only_expired_leases(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(2)])
    a, b = await store.claim(["default"], 2, "w1", 10, now=T0)
    await store.extend_leases("w1", [lease_of(b)], 60, now=T0)
    reaped = await store.reap(now=T0 + timedelta(seconds=11))
    assert [(r.job_id, r.state) for r in reaped] == [(a.id, JobState.QUEUED)]
    job = await store.get(a.id)
    assert job.state is JobState.QUEUED and job.lease_owner is None
    assert job.errors[0]["type"] == "LeaseExpired" and job.errors[0]["attempt"] == 1
    # backoff after attempt 1: 2s ± 20%
    delay = (job.run_at - (T0 + timedelta(seconds=11))).total_seconds()
    assert 1.6 <= delay <= 2.4
    assert [e.type for e in await store.events(a.id)] == [EventType.LEASE_LOST]
    assert (await store.get(b.id)).state is JobState.RUNNING


async def test_fencing_an_old_owner_can_change_nothing_after_a_rescue(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [old] = await store.claim(["default"], 1, "w-old", 10, now=T0)
    await store.reap(now=T0 + timedelta(seconds=11))
    [new] = await store.claim(["default"], 1, "w-new", 10, now=T0 + timedelta(seconds=60))
    assert (new.id, new.attempt) == (enq.id, 2)
    before = await store.pool.fetchrow("SELECT * FROM job WHERE id = $1", enq.id)

    assert await store.complete(old, Success({"stale": True})) is False
    assert await store.complete(old, Failure("E", "stale")) is False
    assert await store.report_progress(lease_of(old), 90, "stale") is False
    status = await store.extend_leases("w-old", [lease_of(old)], 10)
    assert status.held == frozenset()

    after = await store.pool.fetchrow("SELECT * FROM job WHERE id = $1", enq.id)
    assert dict(after) == dict(before)
    # the same worker id with the old attempt is fenced too
    assert (
        await store.complete(
            dataclasses.replace(new, attempt=1),
            Success(),
        )
        is False
    )
    assert await store.complete(new, Success({"fresh": True})) is True
    job = await store.get(enq.id)
    assert job.state is JobState.SUCCEEDED and job.result == {"fresh": True}


async def test_poison_job_ends_dead_with_one_error_per_attempt(store):
    enq = await store.enqueue(NewJob(kind="k", max_attempts=3))
    now = T0
    for attempt in range(1, 4):
        now += timedelta(hours=1)  # past any backoff
        [job] = await store.claim(["default"], 1, f"w{attempt}", 5, now=now)
        assert job.attempt == attempt
        reaped = await store.reap(now=now + timedelta(seconds=6))
        assert len(reaped) == 1
    job = await store.get(enq.id)
    assert job.state is JobState.DEAD and job.finished_at is not None
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert {e["type"] for e in job.errors} == {"LeaseExpired"}
    assert [e.type for e in await store.events(enq.id)] == ["lease_lost", "lease_lost", "dead"]
    assert await store.claim(["default"], 1, "w", 5, now=now + timedelta(hours=5)) == []


async def test_finish_success_costs_no_event(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 30)
    assert await store.complete(job, Success({"answer": 42}))
    done = await store.get(enq.id)
    assert done.state is JobState.SUCCEEDED and done.result == {"answer": 42}
    assert done.progress == 100 and done.finished_at is not None and done.lease_owner is None
    assert await store.events(enq.id) == []


async def test_failures_retry_with_backoff_then_die(store):
    enq = await store.enqueue(NewJob(kind="k", max_attempts=2))
    [job] = await store.claim(["default"], 1, "w", 30, now=T0)
    assert await store.complete(job, Failure("ValueError", "first", "tb1"), now=T0)
    queued = await store.get(enq.id)
    assert queued.state is JobState.QUEUED and queued.run_at > T0
    assert await store.claim(["default"], 1, "w", 30, now=T0) == []  # not before run_at
    [job] = await store.claim(["default"], 1, "w", 30, now=queued.run_at)
    assert await store.complete(job, Failure("ValueError", "second", "tb2"), now=queued.run_at)
    dead = await store.get(enq.id)
    assert dead.state is JobState.DEAD
    assert [(e["attempt"], e["message"], e["traceback"]) for e in dead.errors] == [
        (1, "first", "tb1"),
        (2, "second", "tb2"),
    ]
    assert [e.type for e in await store.events(enq.id)] == ["retry_scheduled", "dead"]


async def test_snooze_does_not_burn_the_budget(store):
    enq = await store.enqueue(NewJob(kind="k", max_attempts=1))
    for i in range(3):
        [job] = await store.claim(["default"], 1, "w", 30, now=T0 + timedelta(minutes=i))
        assert await store.complete(job, Snoozed(after_s=1), now=T0 + timedelta(minutes=i))
    job = await store.get(enq.id)
    assert job.state is JobState.QUEUED and job.attempt == 3 and job.max_attempts == 4
    [job] = await store.claim(["default"], 1, "w", 30, now=T0 + timedelta(hours=1))
    assert await store.complete(job, Failure("E", "m"))
    assert (await store.get(enq.id)).state is JobState.DEAD


async def test_finish_many_applies_a_batch_in_one_call_and_drops_lost_leases(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(4)])
    jobs = await store.claim(["default"], 4, "w", 30, now=T0)
    changes = [
        (
            lease_of(j),
            decide(
                attempt=j.attempt,
                max_attempts=j.max_attempts,
                outcome=Success({"i": j.id}),
                now=T0,
                backoff=store.settings.backoff(),
            ),
        )
        for j in jobs
    ]
    stale = Lease(jobs[0].id, "someone-else", jobs[0].attempt)
    changes[0] = (stale, changes[0][1])
    applied = await store.finish_many(changes)
    assert applied == {j.lease: JobState.SUCCEEDED for j in jobs[1:]}
    states = await store.pool.fetch("SELECT id, state FROM job ORDER BY id")
    assert [r["state"] for r in states] == ["running", "succeeded", "succeeded", "succeeded"]


@pytest.mark.parametrize("percent", [-1, 101])
async def test_progress_out_of_range_is_refused(store, percent):
    with pytest.raises(ValueError, match="percentage"):
        await store.report_progress(Lease(1, "w", 1), percent)


async def test_a_worker_holding_a_new_attempt_still_loses_the_old_one(store):
    await store.enqueue(NewJob(kind="k"))
    [first] = await store.claim(["default"], 1, "w", 10, now=T0)
    await store.reap(now=T0 + timedelta(seconds=11))
    [second] = await store.claim(["default"], 1, "w", 10, now=T0 + timedelta(seconds=60))
    assert (first.id, first.attempt, second.attempt) == (second.id, 1, 2)
    status = await store.extend_leases("w", [first.lease, second.lease], 10)
    assert status.held == {second.lease}
    assert status.lost([first.lease, second.lease]) == [first.lease]
    applied = await store.finish_many(
        [
            (first.lease, decide_success(store, first)),
            (second.lease, decide_success(store, second)),
        ]
    )
    assert applied == {second.lease: JobState.SUCCEEDED}


def decide_success(store, job):
    return decide(
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        outcome=Success({"attempt": job.attempt}),
        now=T0,
        backoff=store.settings.backoff(),
    )


async def test_a_duplicate_outcome_in_one_batch_is_applied_once(store):
    await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 30)
    applied = await store.finish_many(
        [(job.lease, decide_success(store, job)), (job.lease, decide_success(store, job))]
    )
    assert applied == {job.lease: JobState.SUCCEEDED}
    assert (await store.get(job.id)).state is JobState.SUCCEEDED


@pytest.mark.parametrize(
    "outcome",
    [Failure("E", "retryable"), Snoozed(after_s=5), "release", "lease expired"],
)
async def test_a_cancel_request_wins_over_any_requeue(store, outcome):
    enq = await store.enqueue(NewJob(kind="k", max_attempts=5))
    [job] = await store.claim(["default"], 1, "w", 10, now=T0)
    result = await store.cancel(enq.id, by="alice")
    assert result.requested
    if outcome == "lease expired":
        [reaped] = await store.reap(now=T0 + timedelta(seconds=11))
        assert reaped.state is JobState.CANCELLED
    else:
        real = Release() if outcome == "release" else outcome
        assert await store.complete(job, real, now=T0)
    done = await store.get(enq.id)
    assert done.state is JobState.CANCELLED and done.finished_at is not None
    events = await store.events(enq.id)
    assert [e.type for e in events] == ["cancel_requested", "cancelled"]
    assert events[-1].data["reason"] == "cancel requested"
    assert await store.claim(["default"], 1, "w", 10, now=T0 + timedelta(days=1)) == []


async def test_a_cancel_request_does_not_undo_a_success(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 10)
    await store.cancel(enq.id)
    assert await store.complete(job, Success({"done": True}))
    assert (await store.get(enq.id)).state is JobState.SUCCEEDED


async def test_progress_resets_when_the_job_is_claimed_again(store):
    enq = await store.enqueue(NewJob(kind="k"))
    [job] = await store.claim(["default"], 1, "w", 10, now=T0)
    await store.report_progress(job.lease, 80, "almost")
    await store.complete(job, Snoozed(after_s=0), now=T0)
    [again] = await store.claim(["default"], 1, "w", 10, now=T0 + timedelta(seconds=1))
    fresh = await store.get(enq.id)
    assert (fresh.progress, fresh.progress_message) == (0, None)
    await store.report_progress(again.lease, 10, "second attempt", now=T0)
    progress = [e.data for e in await store.events(enq.id) if e.type == "progress"]
    # each attempt keeps its own progress event; the second does not overwrite the first
    assert [(p["attempt"], p["progress"]) for p in progress] == [(1, 80), (2, 10)]


async def test_heartbeat_and_completer_racing_on_the_same_rows_never_deadlock(store):
    """Both lock a worker's rows in id order; in join order they could deadlock."""
    await store.enqueue_many([NewJob(kind="k") for _ in range(400)])
    jobs = await store.claim(["default"], 400, "w", 60)
    rng = random.Random(3)
    for _ in range(10):
        live = [j for j in jobs if (await store.get(j.id)).state is JobState.RUNNING]
        if not live:
            break
        batch = rng.sample(live, min(40, len(live)))
        beat = list(reversed([j.lease for j in live]))
        await asyncio.gather(
            store.extend_leases("w", beat, 60),
            store.finish_many([(j.lease, decide_success(store, j)) for j in batch]),
            store.extend_leases("w", rng.sample(beat, len(beat)), 60),
        )
    counts = await store.pool.fetch("SELECT state, count(*) AS n FROM job GROUP BY state")
    assert sum(r["n"] for r in counts) == 400


async def test_a_retry_waits_after_the_databases_clock_not_the_workers(store):
    """One clock for every worker: a worker whose clock runs an hour fast (or slow) still
    requeues a failed job `backoff` seconds after the database's now."""
    from worker.executor import decided

    backoff = Backoff(base_s=5, cap_s=5, jitter=0)
    for skew in (timedelta(hours=1), -timedelta(hours=1)):
        await store.enqueue(NewJob(kind="k", queue="skew"))
        [job] = await store.claim(["skew"], 1, "w", 30)
        change = decided(job, Failure("E", "m"), datetime.now(UTC) + skew, backoff)
        await store.finish_many([(job.lease, change)])
        stored = await store.get(job.id)
        db_now = await store.pool.fetchval("SELECT now()")
        assert stored.state is JobState.QUEUED
        assert abs((stored.run_at - db_now).total_seconds() - 5) < 2, (skew, stored.run_at)
        [event] = [e for e in await store.events(job.id) if e.type == "retry_scheduled"]
        assert datetime.fromisoformat(event.data["run_at"]) == stored.run_at


async def test_delay_s_counts_from_the_databases_clock(store):
    enq = await store.enqueue(NewJob(kind="k", run_after_s=3600))
    job = await store.get(enq.id)
    assert abs((job.run_at - job.created_at).total_seconds() - 3600) < 2
    [many] = await store.enqueue_many([NewJob(kind="k", run_after_s=60)])
    job = await store.get(many.id)
    assert abs((job.run_at - job.created_at).total_seconds() - 60) < 2


async def test_a_bounded_reap_looks_back_only_as_far_as_asked(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(2)])
    old, new = await store.claim(["default"], 2, "w1", 10, now=T0)  # both expire at T0+10
    await store.extend_leases("w1", [lease_of(new)], 10, now=T0 + timedelta(seconds=3590))
    later = T0 + timedelta(seconds=3605)  # `new` expired 5 s ago, `old` an hour ago
    bounded = await store.reap(now=later, within_s=60)
    assert [r.job_id for r in bounded] == [new.id]
    full = await store.reap(now=later)
    assert [r.job_id for r in full] == [old.id]
