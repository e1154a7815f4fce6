"""job_minute and queue_depth on real Postgres: flushes add up exactly however they overlap,
queue depth is counted once a minute however many workers ask, retention deletes only old
rows, and the charts' reads come from the aggregates alone."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from jobs import sql
from jobs.metrics import DURATION_BUCKETS_S, Tally, bucket_of, bucket_start, window_starts
from jobs.model import NewJob
from jobs.store import Store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
N = len(DURATION_BUCKETS_S) + 1


def minutes_of(*records):
    t = Tally()
    for queue, kind, outcome, ran_s, wait_s, at in records:
        t.record(queue, kind, outcome, ran_s, wait_s=wait_s, at=at.timestamp())
    return t.take_minutes()


async def rows(conn, table):
    return [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]


async def test_flushes_add_to_their_minutes_rows(store, conn):
    late = T0 + timedelta(seconds=75)
    await store.add_minutes(
        minutes_of(("q", "k", "succeeded", 0.2, 0.01, T0), ("q", "k", "dead", 2.0, 3.0, late))
    )
    await store.add_minutes(minutes_of(("q", "k", "succeeded", 30.0, 0.3, T0)))
    got = {(r["minute"], r["outcome"]): r for r in await rows(conn, "job_minute")}
    assert set(got) == {(T0, "succeeded"), (T0 + timedelta(minutes=1), "dead")}
    ok = got[(T0, "succeeded")]
    assert (ok["finished"], ok["run_sum_s"], ok["wait_sum_s"]) == (2, 30.2, 0.31)
    assert ok["run_buckets"][bucket_of(0.2)] == 1 and ok["run_buckets"][bucket_of(30.0)] == 1
    assert ok["wait_buckets"][bucket_of(0.01)] == 1 and sum(ok["wait_buckets"]) == 2
    assert len(ok["wait_buckets"]) == len(ok["run_buckets"]) == N
    assert await store.add_minutes({}) is None  # nothing to add, no statement


async def test_concurrent_flushes_over_the_same_rows_add_up_exactly(store, conn):
    keys = [(f"q{i % 3}", f"k{i}", "succeeded") for i in range(20)]
    minutes = [T0, T0 + timedelta(minutes=1)]

    async def flush(order):
        for _ in range(20):
            await store.add_minutes(
                minutes_of(*((*k, 0.01, 0.5, m) for k in order for m in minutes))
            )

    await asyncio.gather(*(flush(keys if i % 2 else keys[::-1]) for i in range(6)))
    got = await rows(conn, "job_minute")
    assert len(got) == 40
    assert {r["finished"] for r in got} == {6 * 20}
    assert {r["wait_buckets"][bucket_of(0.5)] for r in got} == {6 * 20}
    assert {sum(r["run_buckets"]) for r in got} == {6 * 20}
    hours = await rows(conn, "job_hour")  # both minutes are in T0's hour
    assert len(hours) == 20 and {r["hour"] for r in hours} == {T0}
    assert {r["finished"] for r in hours} == {2 * 6 * 20}
    assert {r["wait_buckets"][bucket_of(0.5)] for r in hours} == {2 * 6 * 20}


async def test_hours_are_utc_hours_in_a_time_zone_half_an_hour_off(db_url, conn):
    """A server (or a role) in Asia/Kolkata, UTC+5:30: its `date_trunc('hour', …)` falls on
    :30 UTC, which the charts' hourly buckets would not find."""
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Kolkata'")
    store = await Store.connect(db_url)
    try:
        at = T0 + timedelta(minutes=7)
        await store.add_minutes(minutes_of(("q", "k", "succeeded", 0.2, 0.01, at)))
        [row] = await rows(conn, "job_hour")
        assert row["hour"] == T0  # 12:00 UTC, not 11:30
        [point] = await store.kind_series("k", T0, 60)
        assert (point["bucket"], point["finished"]) == (T0, 1)
        [total] = await store.kind_totals(T0 + timedelta(minutes=5))
        assert total["finished"] == 1
    finally:
        await store.close()


async def test_a_window_reads_its_first_hour_by_the_minute_and_the_rest_by_the_hour(store):
    since = T0 + timedelta(minutes=30)
    at = [since - timedelta(minutes=1), since, T0 + timedelta(minutes=59)]
    at += [T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=45), T0 + timedelta(hours=5)]
    await store.add_minutes(minutes_of(*(("q", "k", "succeeded", 0.2, 0.01, t) for t in at)))
    [row] = await store.kind_totals(since)
    assert row["finished"] == 5  # all but the minute before the window, none twice
    assert sum(row["run_buckets"]) == 5
    [row] = await store.kind_totals(T0 + timedelta(hours=1))  # on the hour: job_hour alone
    assert row["finished"] == 3


async def _jobs_in(store):
    for queue, count in (("a", 3), ("b", 2)):
        for _ in range(count):
            await store.enqueue(NewJob(kind="k", queue=queue))
    await store.claim(["a"], 1, "w", 30)  # one of a's running


async def test_queue_depth_is_counted_once_a_minute_however_many_workers_ask(store, conn):
    await _jobs_in(store)
    at = T0 + timedelta(seconds=20)
    samples = await asyncio.gather(*(store.sample_depth(now=at) for _ in range(4)))
    assert sorted(s.sampled for s in samples) == [False, False, False, True]
    assert [s.queues for s in samples if s.sampled] == [2]
    assert {s.next_minute_in_s for s in samples} == {40.0}
    got = await rows(conn, "queue_depth")
    assert [(r["minute"], r["queue"], r["queued"], r["running"]) for r in got] == [
        (T0, sql.DEPTH_MARKER, 0, 0),
        (T0, "a", 2, 1),
        (T0, "b", 2, 0),
    ]
    again = await store.sample_depth(now=T0 + timedelta(seconds=59))
    assert (again.sampled, again.queues) == (False, 0)
    nxt = await store.sample_depth(now=T0 + timedelta(minutes=1))
    assert (nxt.sampled, nxt.queues) == (True, 2)
    assert len(await rows(conn, "queue_depth")) == 6


async def test_a_minute_with_nothing_queued_is_still_marked_sampled(store, conn):
    sample = await store.sample_depth(now=T0)
    assert (sample.sampled, sample.queues) == (True, 0)
    assert [r["queue"] for r in await rows(conn, "queue_depth")] == [sql.DEPTH_MARKER]


async def test_retention_deletes_only_rows_past_it_a_bounded_batch_at_a_time(store, conn):
    now = T0
    old = [now - timedelta(days=8, minutes=m) for m in range(1, 4)]
    kept = [now - timedelta(days=8) + timedelta(minutes=1), now - timedelta(days=1)]
    await store.add_minutes(minutes_of(*(("q", "k", "succeeded", 0.1, 0.1, t) for t in old + kept)))
    for t in old + kept:
        await store.sample_depth(now=t)
    # per table and call at most 2: job_minute 2 + job_hour 1 (the old minutes' hour) +
    # queue_depth 2, then the last old minute of each
    assert await store.prune_aggregates(older_than_days=8, limit=2, now=now) == 5
    assert await store.prune_aggregates(older_than_days=8, limit=2, now=now) == 2
    assert await store.prune_aggregates(older_than_days=8, limit=2, now=now) == 0
    for table in ("job_minute", "queue_depth"):
        assert sorted(r["minute"] for r in await rows(conn, table)) == sorted(kept)
    assert sorted(r["hour"] for r in await rows(conn, "job_hour")) == sorted(
        t.replace(minute=0) for t in kept
    )


async def test_the_charts_read_the_aggregates_not_the_jobs(store, conn):
    now = await store.now()
    this = now.replace(second=0, microsecond=0)
    await store.add_minutes(
        minutes_of(
            ("q", "k", "succeeded", 0.2, 0.01, this),
            ("q", "k", "dead", 0.2, 0.01, this),
            ("r", "k", "succeeded", 0.2, 0.01, this - timedelta(minutes=3)),
            ("q", "other", "succeeded", 0.2, 0.01, this),
            ("q", "k", "succeeded", 0.2, 0.01, this - timedelta(hours=2)),  # before the window
        )
    )
    await _jobs_in(store)
    await store.sample_depth()
    buckets = window_starts(now, 60, 1)
    totals = {(r["kind"], r["outcome"]): r["finished"] for r in await store.kind_totals(buckets[0])}
    assert totals == {("k", "succeeded"): 2, ("k", "dead"): 1, ("other", "succeeded"): 1}
    series = await store.kind_series("k", buckets[0], 5)
    expected = Counter(
        {(bucket_start(this, 5), "succeeded"): 1, (bucket_start(this, 5), "dead"): 1}
    )
    expected[(bucket_start(this - timedelta(minutes=3), 5), "succeeded")] += 1
    assert {(r["bucket"], r["outcome"]): r["finished"] for r in series} == dict(expected)
    assert all(sum(r["wait_buckets"]) == r["finished"] for r in series)
    depth = await store.depth_series(buckets[0], 1)
    assert {(r["queue"], r["queued"], r["running"]) for r in depth} == {
        (sql.DEPTH_MARKER, 0, 0),
        ("a", 2, 1),
        ("b", 2, 0),
    }
    for statement, args in (
        (sql.KIND_TOTALS, [buckets[0]]),
        (sql.KIND_SERIES, ["k", buckets[0], 5]),
        (sql.DEPTH_SERIES, [buckets[0], 1]),
    ):
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + statement, *args))
        assert " on job " not in plan and ("job_minute" in plan or "queue_depth" in plan), plan
