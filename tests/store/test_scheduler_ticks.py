"""The scheduler's passes with a clock handed in: several schedulers (each its own store and
connections, as separate workers have) run every pass of a simulated minute concurrently
against real Postgres, so exactly-once per tick, edits and downtime are checked second by
second in well under a second of wall time. tests/integration/test_cron_processes.py checks
the same with real worker processes on the real clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jobs.store import Store
from scheduler.loop import Scheduler

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


async def _schedulers(db_url: str, n: int) -> list[Store]:
    return [await Store.connect(db_url) for _ in range(n)]


async def _fires(conn, name: str) -> list[datetime]:
    rows = await conn.fetch(
        "SELECT idempotency_key FROM job WHERE idempotency_key LIKE $1 ORDER BY 1", f"cron:{name}:%"
    )
    return [datetime.fromisoformat(r["idempotency_key"].split(":", 2)[2]) for r in rows]


async def _every_second(conn, name: str) -> None:
    await conn.execute(
        "INSERT INTO schedule (name, cron, kind, updated_at)"
        " VALUES ($1, '* * * * * *', 'demo.noop', $2)",
        name,
        T0,
    )


async def _run(schedulers: list[Scheduler], start: datetime, seconds: float, step_s: float):
    t = start
    while t <= start + timedelta(seconds=seconds):
        await asyncio.gather(*(s.tick(t) for s in schedulers))
        t += timedelta(seconds=step_s)


@pytest.fixture
async def four(db_url: str):
    stores = await _schedulers(db_url, 4)
    try:
        yield [Scheduler(s) for s in stores]
    finally:
        for s in stores:
            await s.close()


async def test_four_schedulers_enqueue_each_second_of_a_minute_exactly_once(four, conn):
    await _every_second(conn, "tick")
    # passes at uneven moments, as workers' timers drift: 0.3 s apart over 60 s
    await _run(four, T0, 60, 0.3)
    fires = await _fires(conn, "tick")
    assert fires == [T0 + timedelta(seconds=i) for i in range(1, 61)]  # each once, none lost
    assert await conn.fetchval("SELECT count(*) FROM job") == 60


async def test_an_edit_applies_from_the_next_pass_and_a_disable_stops_fires(four, conn):
    await _every_second(conn, "edit")
    await _run(four, T0, 10, 0.5)
    edited = T0 + timedelta(seconds=10.2)
    await conn.execute(
        "UPDATE schedule SET cron = '*/3 * * * * *', last_fire_at = NULL, updated_at = $1"
        " WHERE name = 'edit'",
        edited,
    )
    await _run(four, edited, 20, 0.5)
    after = [f for f in await _fires(conn, "edit") if f > edited]
    assert after == [T0 + timedelta(seconds=s) for s in (12, 15, 18, 21, 24, 27, 30)]
    await conn.execute("UPDATE schedule SET enabled = false WHERE name = 'edit'")
    before = len(await _fires(conn, "edit"))
    await _run(four, T0 + timedelta(seconds=31), 10, 0.5)
    assert len(await _fires(conn, "edit")) == before


async def test_after_downtime_one_coalesced_job_and_the_rest_skipped(four, conn):
    midnight = T0.replace(hour=0)
    await conn.execute(
        "INSERT INTO schedule (name, cron, kind, catch_up_s, last_fire_at) "
        "VALUES ('nightly', '0 0 * * *', 'demo.noop', $1, $2)",
        3 * 86400,
        midnight - timedelta(days=10),
    )
    await _run(four, T0, 5, 1)
    assert await _fires(conn, "nightly") == [midnight]  # three in the window: one job
    row = await conn.fetchrow("SELECT last_fire_at, next_fire_at FROM schedule")
    assert row["last_fire_at"] == midnight
    assert row["next_fire_at"] == midnight + timedelta(days=1)


async def test_four_schedulers_make_one_chain_of_follow_ups_per_fire(four, conn):
    follow = (
        '[{"kind": "demo.noop", "payload": {}}, {"kind": "demo.sleep", "payload": {"seconds": 0}}]'
    )
    await conn.execute(
        "INSERT INTO schedule (name, cron, kind, updated_at, follow_ups)"
        " VALUES ('chain', '*/10 * * * * *', 'demo.noop', $1, $2::jsonb)",
        T0,
        follow,
    )
    await _run(four, T0, 21, 0.3)  # fires at :10 and :20
    rows = await conn.fetch(
        "SELECT j.id, j.kind, j.state, j.idempotency_key, d.parent_id FROM job j"
        " LEFT JOIN job_dependency d ON d.job_id = j.id ORDER BY j.id"
    )
    assert len(rows) == 6  # each fire: its job and two follow-ups, once however many fired it
    by_key = {r["idempotency_key"]: r for r in rows}
    for fire in ("2026-03-02T12:00:10Z", "2026-03-02T12:00:20Z"):
        head = by_key[f"cron:chain:{fire}"]
        first = by_key[f"cron:chain:{fire}:then:1"]
        second = by_key[f"cron:chain:{fire}:then:2"]
        assert head["state"] == "queued" and head["parent_id"] is None
        assert (first["kind"], first["state"], first["parent_id"]) == (
            "demo.noop",
            "waiting",
            head["id"],
        )
        assert (second["kind"], second["parent_id"]) == ("demo.sleep", first["id"])
