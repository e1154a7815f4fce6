"""Cron in real worker processes: four schedulers, one job per tick; edits picked up within
seconds; after downtime one coalesced job and the skipped fires logged."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.processes import Processes
from tests.support import eventually

pytestmark = pytest.mark.slow


async def add_schedule(conn, name: str, cron: str, **columns: object) -> None:
    names = ["name", "cron", "kind", *columns]
    values = [name, cron, "demo.noop", *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(
        f"INSERT INTO schedule ({', '.join(names)}) VALUES ({placeholders})", *values
    )


async def fire_times(conn, name: str) -> list[datetime]:
    keys = await conn.fetch(
        "SELECT idempotency_key FROM job WHERE idempotency_key LIKE $1 ORDER BY 1", f"cron:{name}:%"
    )
    return [
        datetime.fromisoformat(k["idempotency_key"].split(":", 2)[2].replace("Z", "+00:00"))
        for k in keys
    ]


async def start_workers(procs: Processes, conn, n: int) -> None:
    for _ in range(n):
        procs.start_worker("--concurrency", "4", "--processes", "0")

    async def registered() -> bool:
        return await conn.fetchval("SELECT count(*) FROM worker") == n

    await eventually(registered, 30)


async def test_four_workers_enqueue_each_tick_of_a_per_second_schedule_exactly_once(procs, conn):
    await start_workers(procs, conn, 4)
    await add_schedule(conn, "tick", "* * * * * *")
    start = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(8)  # a simulated minute, second by second: tests/store/test_scheduler_ticks
    end = await conn.fetchval("SELECT clock_timestamp()")
    await conn.execute("UPDATE schedule SET enabled = false WHERE name = 'tick'")
    await asyncio.sleep(1.5)  # passes already under way finish

    fires = await fire_times(conn, "tick")
    assert len(fires) == len(set(fires))  # never two jobs for one fire time
    inside = [f for f in fires if start < f <= end]
    assert 7 <= len(inside) <= 9, inside
    # No tick lost: every second from the first fire to the last is there.
    span = int((inside[-1] - inside[0]).total_seconds())
    assert inside == [inside[0] + timedelta(seconds=i) for i in range(span + 1)]
    owners = await conn.fetch("SELECT DISTINCT owner FROM job")
    assert [r["owner"] for r in owners] == ["system"]


async def test_an_edit_reaches_running_workers_within_two_seconds(procs, conn):
    # Passes re-read the schedules every second (CONVEYOR_CRON_RELOAD_S): an edit is in
    # force within that and a fire's lateness margin.
    await start_workers(procs, conn, 2)
    await add_schedule(conn, "edit", "* * * * * *")
    await asyncio.sleep(2)
    await conn.execute(
        "UPDATE schedule SET cron = '*/3 * * * * *', last_fire_at = NULL, updated_at = now() "
        "WHERE name = 'edit'"
    )
    changed = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(7)
    after = [f for f in await fire_times(conn, "edit") if f > changed + timedelta(seconds=2)]
    assert after and all(f.second % 3 == 0 for f in after)

    await conn.execute("UPDATE schedule SET enabled = false WHERE name = 'edit'")
    disabled = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(5)
    late = [f for f in await fire_times(conn, "edit") if f > disabled + timedelta(seconds=2)]
    assert late == []


async def test_after_downtime_one_coalesced_job_and_the_skipped_fires_are_logged(procs, conn):
    now = datetime.now(UTC)
    last_midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if now - last_midnight < timedelta(seconds=30):
        pytest.skip("too close to midnight for a deterministic count")
    # Daily at midnight, last fired ten days ago, with a three-day catch-up window: the
    # three midnights inside the window coalesce into one job, the seven before are skipped.
    await add_schedule(
        conn,
        "nightly",
        "0 0 * * *",
        catch_up_s=3 * 86400,
        last_fire_at=last_midnight - timedelta(days=10),
    )
    await start_workers(procs, conn, 2)

    async def fired() -> list[datetime]:
        return await fire_times(conn, "nightly")

    assert await eventually(fired, 30) == [last_midnight]
    await asyncio.sleep(2)
    assert await fired() == [last_midnight]  # the second worker added nothing
    events = [
        json.loads(line)
        for p in procs.procs
        for line in procs.log(p).splitlines()
        if line.startswith("{")
    ]
    skipped = [e for e in events if e["event"] == "cron.skipped"]
    coalesced = [e for e in events if e["event"] == "cron.coalesced"]
    assert [(e["schedule"], e["count"]) for e in skipped] == [("nightly", 7)]  # logged once
    assert [(e["schedule"], e["count"]) for e in coalesced] == [("nightly", 2)]
    row = await conn.fetchrow("SELECT last_fire_at, next_fire_at FROM schedule")
    assert row["last_fire_at"] == last_midnight
    assert row["next_fire_at"] == last_midnight + timedelta(days=1)
