import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobs import sql
from jobs.model import JobState, NewJob
from jobs.sql import NOTIFY_CHANNEL
from jobs.store import Store, _usable
from tests.support import eventually


async def test_enqueue_writes_a_queued_job_with_defaults(store):
    enq = await store.enqueue(NewJob(kind="demo.noop", payload={"a": [1, 2]}))
    assert not enq.duplicate
    job = await store.get(enq.id)
    assert job.state is JobState.QUEUED
    assert (job.kind, job.queue, job.payload, job.priority) == (
        "demo.noop",
        "default",
        {"a": [1, 2]},
        0,
    )
    assert (job.attempt, job.max_attempts, job.progress, job.errors) == (0, 5, 0, [])
    assert job.owner == "system" and job.finished_at is None and job.lease_owner is None
    assert abs((job.run_at - job.created_at).total_seconds()) < 1


async def test_enqueue_honours_run_at_and_options(store):
    at = datetime(2030, 1, 1, tzinfo=UTC)
    enq = await store.enqueue(
        NewJob(kind="k", queue="prices", priority=7, run_at=at, max_attempts=2, timeout_s=30)
    )
    job = await store.get(enq.id)
    assert (job.queue, job.priority, job.run_at, job.max_attempts, job.timeout_s) == (
        "prices",
        7,
        at,
        2,
        30,
    )


async def test_same_key_returns_the_existing_job(store):
    first = await store.enqueue(NewJob(kind="k", idempotency_key="abc", owner="alice"))
    again = await store.enqueue(NewJob(kind="other", idempotency_key="abc", owner="alice"))
    assert again.duplicate and again.id == first.id
    assert (await store.get(first.id)).kind == "k"  # the first writer's job is kept


async def test_fifty_concurrent_enqueues_with_one_key_make_one_job(store, db_url):
    # 50 separate connections, so the inserts really race inside Postgres.
    conns = [await asyncpg.connect(db_url) for _ in range(50)]
    try:
        start = asyncio.Event()

        async def submit(c):
            await start.wait()
            return await store.enqueue(
                NewJob(kind="k", idempotency_key="same", owner="alice"), conn=c
            )

        tasks = [asyncio.create_task(submit(c)) for c in conns]
        await asyncio.sleep(0.05)
        start.set()
        results = await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert sum(r.duplicate for r in results) == 49
    other = await store.enqueue(NewJob(kind="k", idempotency_key="same", owner="bob"))
    assert not other.duplicate and other.id != results[0].id
    count = await store.pool.fetchval("SELECT count(*) FROM job WHERE idempotency_key = 'same'")
    assert count == 2


async def test_enqueue_many_returns_ids_in_input_order(store):
    jobs = [NewJob(kind="k", payload={"i": i}, priority=i % 3) for i in range(1000)]
    result = await store.enqueue_many(jobs)
    assert len(result) == 1000 and not any(r.duplicate for r in result)
    rows = await store.pool.fetch("SELECT id, payload FROM job")
    by_id = {r["id"]: r["payload"]["i"] for r in rows}
    assert [by_id[r.id] for r in result] == list(range(1000))


async def test_enqueue_many_reports_duplicates_at_their_place(store):
    existing = await store.enqueue(
        NewJob(kind="k", idempotency_key="k1", owner="alice", payload={"at": "before"})
    )
    specs = [
        (None, "alice"),
        ("k0", "alice"),
        (None, "alice"),
        ("k1", "alice"),  # taken before
        ("k0", "alice"),  # taken earlier in this batch
        ("k1", "bob"),  # the same key, another owner
        (None, "bob"),
    ]
    result = await store.enqueue_many(
        [
            NewJob(kind="k", idempotency_key=k, owner=o, payload={"at": i})
            for i, (k, o) in enumerate(specs)
        ]
    )
    assert [r.duplicate for r in result] == [False, False, False, True, True, False, False]
    assert result[3].id == existing.id
    assert result[4].id == result[1].id
    payloads = {r["id"]: r["payload"]["at"] for r in await store.pool.fetch("SELECT * FROM job")}
    # every new job's id points at the input row that created it
    assert [payloads[r.id] for r in result] == [0, 1, 2, "before", 1, 5, 6]
    assert len(payloads) == 6


async def test_enqueue_many_takes_fifty_thousand_jobs_in_one_call(store):
    result = await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(50_000)])
    assert len({r.id for r in result}) == 50_000
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'queued'") == 50_000


async def test_enqueue_in_the_callers_transaction_is_atomic_with_it(store, conn):
    await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")

    async with conn.transaction():
        await conn.execute("INSERT INTO orders VALUES (1)")
        kept = await store.enqueue(NewJob(kind="order.ship", payload={"order": 1}), conn=conn)

    with pytest.raises(RuntimeError, match="boom"):
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES (2)")
            await store.enqueue(NewJob(kind="order.ship", payload={"order": 2}), conn=conn)
            await store.enqueue_many([NewJob(kind="order.ship") for _ in range(3)], conn=conn)
            raise RuntimeError("boom")

    kinds = await store.pool.fetch("SELECT id, payload FROM job")
    assert [(r["id"], r["payload"]) for r in kinds] == [(kept.id, {"order": 1})]
    assert await conn.fetchval("SELECT count(*) FROM orders") == 1


async def test_bulk_enqueue_notifies_each_queue_once_and_only_on_commit(store, db_url, conn):
    listener = await asyncpg.connect(db_url)
    heard: list[str] = []
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        async with conn.transaction():
            await store.enqueue_many(
                [NewJob(kind="k", queue=q) for q in ["a", "b", "a", "a", "b"] * 100], conn=conn
            )
            await asyncio.sleep(0.2)
            assert heard == []  # nothing before commit
        await eventually(lambda: len(heard) >= 2)
        await asyncio.sleep(0.2)
        assert sorted(heard) == ["a", "b"]

        heard.clear()
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.enqueue(NewJob(kind="k", queue="c"), conn=conn)
                raise RuntimeError
        await store.enqueue(NewJob(kind="k", queue="d"))
        await eventually(lambda: heard)
        await asyncio.sleep(0.2)
        assert heard == ["d"]
    finally:
        await listener.close()


async def test_run_at_in_the_past_is_allowed_and_claimable(store):
    past = datetime.now(UTC) - timedelta(hours=1)
    enq = await store.enqueue(NewJob(kind="k", run_at=past))
    claimed = await store.claim(["default"], 10, "w", 30)
    assert [j.id for j in claimed] == [enq.id]


async def test_single_enqueues_recover_when_their_kept_connection_dies(store):
    first = await store.enqueue(NewJob(kind="k"))
    kept = store._inserters[0].conn
    assert kept is not None  # single enqueues keep a connection aside
    pid = kept.get_server_pid()
    async with store.pool.acquire() as other:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
    await eventually(lambda: not _usable(kept), 5)  # asyncpg has seen it close
    again = await store.enqueue(NewJob(kind="k"))  # no error: on a fresh connection
    assert again.id > first.id
    assert store._inserters[0].conn not in (None, kept)
    assert await store.pool.fetchval("SELECT count(*) FROM job") == 2


async def test_concurrent_submits_take_up_to_inserters_kept_connections(db_url):
    store = await Store.connect(db_url, inserters=3)
    try:
        jobs = await asyncio.gather(*(store.submit(NewJob(kind="k")) for _ in range(40)))
        assert len({job.id for job, _ in jobs}) == 40
        assert await store.pool.fetchval("SELECT count(*) FROM job") == 40
        kept = [k.conn for k in store._inserters if k.conn is not None]
        assert 2 <= len(kept) <= 3  # forty at once overlap; never more than asked for
        for conn in kept:  # each keeps its plans (the pool's connections plan every call)
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        one = await Store.connect(db_url, inserters=1)
        try:
            await asyncio.gather(*(one.submit(NewJob(kind="k")) for _ in range(40)))
            assert [k.conn is not None for k in one._inserters] == [True]
        finally:
            await one.close()
    finally:
        await store.close()


async def test_batches_run_on_a_kept_connection_with_their_plan_kept(db_url):
    store = await Store.connect(db_url)
    try:
        for _ in range(8):  # a batch of a few: planned for 100 rows, `auto` re-planned it
            await store.enqueue_many([NewJob(kind="k") for _ in range(3)])
        kept = store._batcher.conn
        assert kept is not None, "the batches ran on the pool's connections"
        plans = await kept.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            sql.ENQUEUE_MANY_QUIETLY,
        )
        assert plans is not None
        assert (plans["generic_plans"], plans["custom_plans"]) == (8, 0)
        assert await store.pool.fetchval("SELECT count(*) FROM job") == 24
    finally:
        await store.close()


async def test_kept_connections_that_died_while_idle_are_replaced_and_the_store_closes(db_url):
    store = await Store.connect(db_url)
    admin = await asyncpg.connect(db_url)
    try:
        await store.enqueue(NewJob(kind="k"))  # the kept single-insert connection
        await store.enqueue_many([NewJob(kind="k")])  # the kept batch connection
        kept = [store._inserters[0].conn, store._batcher.conn]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in kept]
        await admin.execute("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", pids)
        await eventually(lambda: all(not _usable(c) for c in kept), 5)
        await store.enqueue(NewJob(kind="k"))  # no error: a fresh connection is taken
        await store.enqueue_many([NewJob(kind="k")])
        assert await admin.fetchval("SELECT count(*) FROM job") == 4
    finally:
        await admin.close()
        await store.close()  # raised InterfaceError on the dead connections
