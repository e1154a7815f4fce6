"""The hot statements keep the plans they were shaped for (EXPLAIN on real data)."""

import asyncio

import pytest

from jobs import sql
from jobs.model import NewJob


@pytest.fixture
async def busy(store):
    """20,000 queued jobs in two queues (in both halves of `job_ready`), 5,000 finished, 200
    running."""
    for half in sql.READY_HALVES:
        await store.pool.execute(sql.SET_CURRENT_HALF, half)
        await store.enqueue_many([NewJob(kind="k", queue=("a", "b")[i % 2]) for i in range(10_000)])
    await store.enqueue_many([NewJob(kind="k", queue="old") for _ in range(5_000)])
    await store.pool.execute(
        "UPDATE job SET state = 'succeeded', finished_at = now() WHERE queue = 'old'"
    )
    running = await store.claim(["a"], 200, "w", 30)
    await store.pool.execute("VACUUM ANALYZE job, job_ready")
    return running


async def test_claim_reads_each_ready_half_in_claim_order_and_deletes_by_tid(store, busy):
    text = await _explain(store, sql.CLAIM, "b", 100, "w2", 30.0, None)
    for half in sql.READY_HALVES:
        # rows come out of each half's indexes already in claim order (ready jobs by turn,
        # jobs that were due later by start), and go by their tid
        assert f"Index Scan using job_ready_{half}_queue_lane_priority_turn_id_idx" in text
        assert f"Index Scan using job_ready_{half}_queue_lane_priority_run_at_id_idx" in text
        assert f"Tid Scan on job_ready_{half}" in text
    # (the sequence saying which half is current is read as a "Seq Scan", one row)
    assert "Seq Scan on job " not in text
    assert "Seq Scan on job_ready_0" not in text and "Seq Scan on job_ready_1" not in text
    assert "Index Scan using job_pkey on job j" in text


async def test_finish_and_heartbeat_touch_only_their_rows(store, busy):
    ids = [j.id for j in busy[:100]]
    n = len(ids)
    finish = await _explain(
        store,
        sql.FINISH_MANY,
        ids,
        [1] * n,
        ["w"] * n,
        ["succeeded"] * n,
        [None] * n,
        [None] * n,
        [None] * n,
        [0] * n,
        [None] * n,
        [None] * n,
        None,
    )
    assert "Seq Scan on job " not in finish and "rows=100 loops=1" in finish
    extend = await _explain(store, sql.EXTEND_LEASES, ids, [1] * n, 30.0, None, "w")
    assert "Seq Scan on job " not in extend
    succeed = await _explain(store, sql.SUCCEED_MANY, ids, [1] * n, [None] * n, "w", None)
    # The ids are looked up in the primary key: the lease index holds every running job
    # (and, while vacuum is held back, an entry for each finished one).
    for plan in (finish, extend, succeed):
        assert "job_lease_idx" not in plan and "job_pkey" in plan


async def test_reaper_scans_only_running_rows(store, busy):
    for within_s in (None, 15.0):
        text = await _explain(store, sql.LOCK_EXPIRED, None, 500, within_s)
        assert "job_lease_idx" in text and "Seq Scan on job" not in text


HOT = (sql.CLAIM, sql.FINISH_MANY, sql.SUCCEED_MANY, sql.EXTEND_LEASES)
"""Run with sql.HOT_PLANNER: their plans fixed, and planned once per connection."""


async def _explain(store, statement, *args):
    """The plan the store's own connections run, with actual rows, rolled back afterwards.
    A hot statement is planned as sql.HOT_PLANNER says, generically; EXPLAIN would plan it
    for the values given, so its plan is taken from auto_explain as it runs instead."""
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            if statement not in HOT:
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *args)
                return "\n".join(r[0] for r in rows)
            await conn.execute(sql.HOT_PLANNER_LOCAL)
            return await _executed_plan(conn, statement, *args)
        finally:
            await tx.rollback()


async def _executed_plan(conn, statement, *args):
    await conn.execute("LOAD 'auto_explain'")
    await conn.execute(
        "SET LOCAL auto_explain.log_min_duration = 0; SET LOCAL auto_explain.log_analyze = on;"
        " SET LOCAL auto_explain.log_level = notice"
    )
    plans: list[str] = []

    def heard(_conn, message):
        plans.append(message.message)

    conn.add_log_listener(heard)
    try:
        # prepared afresh: a plan cached on this connection before would say nothing
        prepared = await conn.prepare(statement)
        await prepared.fetch(*args)
        await conn.execute("SELECT 1")
        await asyncio.sleep(0.05)  # the notices are delivered by the event loop
    finally:
        conn.remove_log_listener(heard)
    mine = [plan for plan in plans if statement.strip()[:60] in plan]
    assert mine, f"auto_explain reported no plan of this statement: {plans}"
    return mine[-1]


async def test_store_connections_plan_with_the_real_parameters(store):
    # Generic plans for these statements were measured 2.5x slower (see jobs/db.py); a pool
    # that silently lost the setting would only show up as a slower benchmark.
    assert await store.pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"


async def test_a_claim_planned_while_a_half_has_no_statistics_still_reads_it_in_order(store, busy):
    # A half just emptied by TRUNCATE has no row count: a plan made then is the one the
    # kept claim connection goes on using while the half fills up again.
    await store.pool.execute("TRUNCATE job_ready_1")
    await store.pool.execute(sql.SET_CURRENT_HALF, 1)
    await store.enqueue_many([NewJob(kind="k", queue="b") for _ in range(5_000)])
    text = await _explain(store, sql.CLAIM, "b", 100, "w2", 30.0, None)
    [scan] = [
        line
        for line in text.splitlines()
        if "Index Scan using job_ready_1_queue_lane_priority_turn_id_idx on job_ready_1 " in line
    ]
    assert scan.endswith("rows=100 loops=1)"), scan  # read in order, up to the limit
    assert "Seq Scan on job_ready_1" not in text
