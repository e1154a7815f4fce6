"""finish_many's two shapes: a batch of one worker's successes (SUCCEED_MANY) and everything
else (FINISH_MANY) write the same rows and are fenced the same way."""

from datetime import UTC, datetime

from jobs.model import JobState, Lease, NewJob
from jobs.transitions import Failure, Success, decide

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def change(store, job, outcome):
    return decide(
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        outcome=outcome,
        now=NOW,
        backoff=store.settings.backoff(),
    )


async def row(store, job_id):
    return dict(await store.pool.fetchrow("SELECT * FROM job WHERE id = $1", job_id))


async def test_a_batch_of_successes_is_fenced_and_leaves_the_happy_path_on_the_row(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(4)])
    a, b, c, d = await store.claim(["default"], 4, "w", 30)
    stale = Lease(d.id, "w", d.attempt + 1)  # an attempt this worker does not hold
    applied = await store.finish_many(
        [
            (a.lease, change(store, a, Success({"n": 1}))),
            (b.lease, change(store, b, Success(None))),
            (c.lease, change(store, c, Success([1, "two"]))),
            (stale, change(store, d, Success({"n": 4}))),
        ],
        now=NOW,
    )
    assert applied == {lease: JobState.SUCCEEDED for lease in (a.lease, b.lease, c.lease)}
    for job, result in ((a, {"n": 1}), (b, None), (c, [1, "two"])):
        r = await row(store, job.id)
        assert (r["state"], r["result"], r["progress"], r["finished_at"]) == (
            "succeeded",
            result,
            100,
            NOW,
        )
        assert (r["lease_owner"], r["lease_expires_at"], r["errors"]) == (None, None, [])
    assert (await row(store, d.id))["state"] == "running"  # the stale lease changed nothing
    assert await store.pool.fetchval("SELECT count(*) FROM job_event") == 0


async def test_a_mixed_batch_and_one_from_another_owner_take_the_general_statement(store):
    await store.enqueue_many([NewJob(kind="k", max_attempts=1) for _ in range(2)])
    [a] = await store.claim(["default"], 1, "w1", 30)
    [b] = await store.claim(["default"], 1, "w2", 30)
    applied = await store.finish_many(
        [
            (a.lease, change(store, a, Success({"ok": True}))),
            (b.lease, change(store, b, Failure("E", "boom"))),
        ],
        now=NOW,
    )
    assert applied == {a.lease: JobState.SUCCEEDED, b.lease: JobState.DEAD}
    assert (await row(store, a.id))["result"] == {"ok": True}
    assert [e.type for e in await store.events(b.id)] == ["dead"]
