"""The hot statements keep the plans they were shaped for (EXPLAIN on real data)."""

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


async def _explain(store, statement, *args):
    """EXPLAIN ANALYZE as the store's own connections plan it (the hot statements with
    sql.HOT_PLANNER), rolled back afterwards."""
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            if statement in (sql.CLAIM, sql.FINISH_MANY, sql.SUCCEED_MANY, sql.EXTEND_LEASES):
                await conn.execute(sql.HOT_PLANNER_LOCAL)
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *args)
        finally:
            await tx.rollback()
    return "\n".join(r[0] for r in rows)


async def test_store_connections_plan_with_the_real_parameters(store):
    # Generic plans for these statements were measured 2.5x slower (see jobs/db.py); a pool
    # that silently lost the setting would only show up as a slower benchmark.
    assert await store.pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
