"""`conveyor prune --leaderboards AGE`: old leaderboard snapshots go, with their entries, a
batch at a time; the latest snapshot always stays, however old."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from jobs.store import Store
from stores.research import prune_snapshots


async def snapshot(db: asyncpg.Pool, job_id: int, days_old: int) -> int:
    snapshot_id: int = await db.fetchval(
        "INSERT INTO leaderboard_snapshot (job_id, metric, created_at)"
        " VALUES ($1, 'sharpe', now() - make_interval(days => $2)) RETURNING id",
        job_id,
        days_old,
    )
    await db.execute(
        "INSERT INTO leaderboard_entry"
        " (snapshot_id, rank, strategy_id, symbol, family, params, score, metrics)"
        " SELECT $1, r, r, 'IBM', 'ma_crossover', '{}', 1.0, '{}' FROM generate_series(1, 3) r",
        snapshot_id,
    )
    return snapshot_id


async def test_old_snapshots_go_with_their_entries_and_recent_ones_stay(store: Store):
    db = store.pool
    old = [await snapshot(db, job, 40 + job) for job in range(1, 4)]
    recent = await snapshot(db, 10, 2)
    assert await prune_snapshots(db, timedelta(days=30), batch=2) == len(old)  # two batches
    assert [r["id"] for r in await db.fetch("SELECT id FROM leaderboard_snapshot")] == [recent]
    entries = await db.fetch("SELECT DISTINCT snapshot_id FROM leaderboard_entry")
    assert [r["snapshot_id"] for r in entries] == [recent]


async def test_the_latest_snapshot_stays_however_old(store: Store):
    db = store.pool
    await snapshot(db, 1, 90)
    latest = await snapshot(db, 2, 60)
    assert await prune_snapshots(db, timedelta(days=30), batch=100) == 1
    assert await prune_snapshots(db, timedelta(days=30), batch=100) == 0
    assert [r["id"] for r in await db.fetch("SELECT id FROM leaderboard_snapshot")] == [latest]
    assert await db.fetchval("SELECT count(*) FROM leaderboard_entry") == 3
