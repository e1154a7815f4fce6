"""The platform's default schedules: created when absent, never overwriting an operator's
edit, and left out while no worker knows their kind."""

import json

from kinds.schedules import ensure_defaults, platform_defaults
from scheduler.cron import Cron
from stores.schedules import ScheduleStore

KINDS = {"prices.ingest", "patterns.analyze", "leaderboard.refresh"}


def as_is(kind, payload):
    return payload


async def test_defaults_are_created_once_and_edits_survive(conn, store):
    created, unknown = await ensure_defaults(ScheduleStore(store.db), KINDS, as_is, ["AAPL", "SPY"])
    assert created == ["prices.ingest.daily", "leaderboard.refresh.hourly"] and unknown == []
    row = await conn.fetchrow("SELECT * FROM schedule WHERE name = 'prices.ingest.daily'")
    assert (row["cron"], row["timezone"], row["kind"]) == (
        "30 16 * * 1-5",
        "America/New_York",
        "prices.ingest",
    )
    assert row["payload"] == '{"symbols": ["AAPL", "SPY"], "provider": "sample"}'
    # the day's patterns, then a leaderboard refresh, each after the one before
    assert json.loads(row["follow_ups"]) == [
        {"kind": "patterns.analyze", "payload": {"symbols": ["AAPL", "SPY"]}},
        {"kind": "leaderboard.refresh", "payload": {}},
    ]
    await conn.execute(
        "UPDATE schedule SET enabled = false, cron = '0 22 * * 1-5' "
        "WHERE name = 'prices.ingest.daily'"
    )
    assert await ensure_defaults(ScheduleStore(store.db), KINDS, as_is, ["AAPL"]) == ([], [])
    edited = await conn.fetchrow("SELECT * FROM schedule WHERE name = 'prices.ingest.daily'")
    assert (edited["enabled"], edited["cron"]) == (False, "0 22 * * 1-5")


async def test_a_default_for_an_unknown_kind_is_left_out(conn, store):
    schedules = ScheduleStore(store.db)
    created, unknown = await ensure_defaults(schedules, {"leaderboard.refresh"}, as_is, ["AAPL"])
    assert created == ["leaderboard.refresh.hourly"] and unknown == ["prices.ingest.daily"]
    assert await conn.fetchval("SELECT count(*) FROM schedule") == 1


def test_every_default_parses():
    for schedule in platform_defaults(["AAPL"]):
        Cron.parse(schedule["cron"], schedule["timezone"])
