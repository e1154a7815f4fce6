"""Single enqueues made at once share a statement; only jobs that are due wake workers."""

import asyncio

import asyncpg
import pytest

from jobs import sql
from jobs.model import NewJob


async def transactions_that_inserted(conn) -> int:
    """Rows inserted by one transaction share its xmin."""
    return await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM job")


async def test_concurrent_enqueues_share_statements_and_each_caller_gets_its_own_job(store, conn):
    answers = await asyncio.gather(
        *(store.enqueue(NewJob(kind="k", payload={"n": n})) for n in range(300))
    )
    assert len({a.id for a in answers}) == 300
    assert not any(a.duplicate for a in answers)
    for n, answer in enumerate(answers):
        assert (await store.get(answer.id)).payload == {"n": n}
    # one alone on the kept connection, then batches: far fewer commits than jobs
    assert await transactions_that_inserted(conn) <= 20
    assert await conn.fetchval("SELECT count(*) FROM job_ready") == 300


async def test_one_enqueue_at_a_time_is_one_transaction_each(store, conn):
    for n in range(5):
        await store.enqueue(NewJob(kind="k", payload={"n": n}))
    assert await transactions_that_inserted(conn) == 5


async def test_callers_sharing_an_idempotency_key_in_one_batch_get_the_one_job(store, conn):
    answers = await asyncio.gather(
        *(store.enqueue(NewJob(kind="k", idempotency_key="tick", owner="a")) for _ in range(50))
    )
    assert len({a.id for a in answers}) == 1
    assert sum(not a.duplicate for a in answers) == 1
    assert await conn.fetchval("SELECT count(*) FROM job") == 1


async def test_a_bad_job_fails_only_its_own_caller(store, conn):
    jobs = [NewJob(kind="k", payload={"n": n}) for n in range(40)]
    jobs[25] = NewJob(kind="k", queue="q" * 200)  # refused by the job_queue_name CHECK
    answers = await asyncio.gather(*(store.enqueue(j) for j in jobs), return_exceptions=True)
    assert isinstance(answers[25], asyncpg.CheckViolationError)
    good = [a for n, a in enumerate(answers) if n != 25]
    assert not any(isinstance(a, BaseException) for a in good)
    assert await conn.fetchval("SELECT count(*) FROM job") == 39


class Wakes:
    """The queues woken from the moment it starts listening."""

    def __init__(self, store, conn):
        self.store, self.conn, self.got = store, conn, []

    async def __aenter__(self):
        await self.conn.add_listener(sql.NOTIFY_CHANNEL, self._got)
        return self

    async def __aexit__(self, *exc):
        await self.conn.remove_listener(sql.NOTIFY_CHANNEL, self._got)

    def _got(self, conn, pid, channel, payload):
        self.got.append(payload)

    async def heard(self):
        await self.store.notices.flush()
        await self.conn.execute("SELECT 1")  # a round trip delivers anything pending
        got, self.got = sorted(self.got), []
        return got


@pytest.mark.parametrize("how", ["alone", "batched", "enqueue_many", "submit", "unique"])
async def test_only_a_job_that_is_due_wakes_its_queue(store, conn, how):
    async def put(queue, **timing):
        def job(n):
            unique = {"unique_key": f"{queue}-{n}"} if how == "unique" else {}
            return NewJob(kind="k", queue=queue, **timing, **unique)

        if how == "batched":
            await asyncio.gather(*(store.enqueue(job(n)) for n in range(10)))
        elif how == "enqueue_many":
            await store.enqueue_many([job(n) for n in range(10)])
        elif how == "submit":
            await store.submit(job(0))
        else:
            await store.enqueue(job(0))

    async with Wakes(store, conn) as wakes:
        await put("later", run_after_s=60)
        assert await wakes.heard() == []
        await put("now")
        heard = await wakes.heard()
        assert set(heard) == {"now"}
        if how != "batched":
            assert heard == ["now"]


async def test_enqueue_many_in_the_callers_transaction_wakes_at_its_commit_and_only_for_due_jobs(
    store, conn
):
    async with Wakes(store, conn) as wakes:
        async with store.pool.acquire() as own, own.transaction():
            await store.enqueue_many(
                [NewJob(kind="k", queue="later", run_after_s=60), NewJob(kind="k", queue="now")],
                conn=own,
            )
            assert await wakes.heard() == []
        assert await wakes.heard() == ["now"]
