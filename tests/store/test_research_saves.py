"""A research kind's save, run twice for the same job (an attempt repeated after a crash
between storing and finishing), leaves exactly what one run leaves."""

from __future__ import annotations

import asyncio
import re
from datetime import date

from jobs.model import SYSTEM_OWNER, NewJob
from jobs.store import Store
from kinds.prices import SampleProvider, store_bars, validate
from tests.support import InlineContext, run_attempts
from worker.registry import default_registry


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


async def test_two_attempts_saving_at_once_store_one_set_of_runs(store: Store):
    """A lost lease's attempt and its retry can save at the same time: the first COPYs its
    rows, the second waits for it and then rewrites them (two COPYs would collide)."""

    bars = SampleProvider().fetch("IBM", date(2010, 1, 1), date(2012, 12, 31), "1d")
    await store_bars(store.pool, "IBM", "1d", "sample", validate("IBM", bars))
    grid = {
        "fast": {"start": 5, "stop": 20, "step": 5},
        "slow": {"start": 30, "stop": 90, "step": 30},
    }
    payload = {"symbols": ["IBM"], "grid": grid}
    await store.enqueue(NewJob(kind="strategy.optimize", payload=payload, owner=SYSTEM_OWNER))
    (job,) = await store.claim(["default"], 1, "inline", 60)
    spec = default_registry().get("strategy.optimize")
    assert spec is not None and spec.load is not None and spec.save is not None
    model = spec.payload.model_validate(payload)
    output = spec.handler(
        InlineContext(job.id, job.kind), model, await spec.load(store.db, job, model)
    )
    first, second = await asyncio.gather(
        spec.save(store.db, job, model, output), spec.save(store.db, job, model, output)
    )
    assert first == second
    sets = len(model.parameter_sets())
    assert await store.pool.fetchval("SELECT count(*) FROM strategy_run") == 2 * sets
    best = first["symbols"]["IBM"]["best"]
    stored = await store.pool.fetchrow(
        "SELECT params, sample FROM strategy_run WHERE id = $1", best["strategy_id"]
    )
    assert stored["params"] == best["params"] and stored["sample"] == "out"


async def test_an_optimizations_progress_names_the_symbol_and_step_it_is_on(store: Store):

    for symbol in ("IBM", "MSFT"):
        bars = SampleProvider().fetch(symbol, date(2010, 1, 1), date(2012, 12, 31), "1d")
        await store_bars(store.pool, symbol, "1d", "sample", validate(symbol, bars))
    spec = default_registry().get("strategy.optimize")
    assert spec is not None and spec.load is not None
    grid = {"fast": {"start": 2, "stop": 40, "step": 1}, "slow": {"start": 10, "stop": 200}}
    model = spec.payload.model_validate({"symbols": ["IBM", "MSFT"], "grid": grid})
    sets = len(model.parameter_sets())
    await store.enqueue(NewJob(kind="strategy.optimize", payload=model.model_dump(mode="json")))
    (job,) = await store.claim(["default"], 1, "inline", 60)
    ctx = InlineContext(job.id, job.kind)
    spec.handler(ctx, model, await spec.load(store.db, job, model))
    said = [m for m in ctx.messages if m]
    ibm = [m for m in said if m.startswith("IBM (1 of 2), ma_crossover grid: ")]
    msft = [m for m in said if m.startswith("MSFT (2 of 2), ma_crossover grid: ")]
    assert ibm and msft and said.index(ibm[-1]) < said.index(msft[0])
    counted = re.fullmatch(
        r"MSFT \(2 of 2\), ma_crossover grid: ([0-9,]+) of ([0-9,]+) parameter sets", msft[-1]
    )
    assert counted and counted[2] == f"{sets:,}"
    assert 0.9 * sets <= int(counted[1].replace(",", "")) <= sets
    assert said[-1] == f"storing {4 * sets:,} runs" and ctx.reported[-1] == 99
    assert ctx.reported == sorted(ctx.reported)
