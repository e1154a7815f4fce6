"""A research kind's save, run twice for the same job (an attempt repeated after a crash
between storing and finishing), leaves exactly what one run leaves."""

from __future__ import annotations

from datetime import date

from compute.prices import SampleProvider, store_bars, validate
from jobs.model import SYSTEM_OWNER
from jobs.store import Store
from tests.support import run_attempts


async def run_twice(store: Store, kind: str, payload: dict) -> tuple[object, object]:
    first, second = await run_attempts(store, kind, payload, SYSTEM_OWNER, 2)
    return first, second


async def test_optimize_then_leaderboard_saved_twice_store_once(store: Store):
    bars = SampleProvider().fetch("IBM", date(2010, 1, 1), date(2012, 12, 31), "1d")
    await store_bars(store.pool, "IBM", "1d", "sample", validate("IBM", bars))
    grid = {
        "fast": {"start": 5, "stop": 15, "step": 5},
        "slow": {"start": 30, "stop": 60, "step": 30},
    }
    first, second = await run_twice(store, "strategy.optimize", {"symbols": ["IBM"], "grid": grid})
    assert first == second
    runs = await store.pool.fetch("SELECT published, selected FROM strategy_run")
    assert len(runs) == 2 * 3 * 2 and all(r["published"] for r in runs)  # system's: published

    first, second = await run_twice(store, "leaderboard.refresh", {"limit": 5})
    assert first == second
    assert await store.pool.fetchval("SELECT count(*) FROM leaderboard_snapshot") == 1
    entries = await store.pool.fetchval("SELECT count(*) FROM leaderboard_entry")
    assert entries == first["entries"] == 1  # one selected out-of-sample run: the best


async def test_patterns_saved_twice_store_once(store: Store):
    bars = SampleProvider().fetch("MSFT", date(2011, 1, 1), date(2012, 12, 31), "1d")
    await store_bars(store.pool, "MSFT", "1d", "sample", validate("MSFT", bars))
    first, second = await run_twice(store, "patterns.analyze", {"symbols": ["MSFT"]})
    assert first == second
    assert await store.pool.fetchval("SELECT count(*) FROM pattern") == first["patterns"] > 0


async def test_a_heatmaps_axes_keep_the_parameters_order_through_jsonb(conn):
    """Job results are jsonb, which orders an object's keys by length: axes kept as an
    object came back `low, high, period` for `rsi_reversion`'s `period, low, high`."""
    import json

    import numpy as np

    from compute import research

    values = {"period": [7.0, 14.0], "low": [20.0], "high": [80.0]}
    params = np.array([[7, 20, 80], [14, 20, 80]], dtype=float)
    cube = research.heatmap("rsi_reversion", values, params, np.array([0.5, 0.7]))
    stored = json.loads(await conn.fetchval("SELECT $1::text::jsonb::text", json.dumps(cube)))
    assert [a["name"] for a in stored["axes"]] == ["period", "low", "high"]
    assert stored["values"] == [[[0.5]], [[0.7]]]  # nested in that same order
