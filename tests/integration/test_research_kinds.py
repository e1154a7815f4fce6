"""The five research kinds, run by a real `conveyor worker` (its pool children compute) on the
real sample prices; every outcome is read back from the database."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from compute.backtest import FAMILIES, metrics, strategy_returns
from jobs.model import JobState, NewJob
from jobs.store import Store
from kinds.prices import SampleProvider
from tests.processes import Processes
from tests.support import eventually

pytestmark = pytest.mark.slow


async def run(store: Store, kind: str, payload: dict, timeout: float = 90) -> dict:
    """Enqueue one job and wait for it to end; returns the finished job's result."""
    job_id = (await store.enqueue(NewJob(kind=kind, payload=payload))).id

    async def ended() -> bool:
        return (await store.get(job_id)).state in (JobState.SUCCEEDED, JobState.DEAD)

    await eventually(ended, timeout)
    job = await store.get(job_id)
    assert job.state == JobState.SUCCEEDED, job.errors
    assert job.progress == 100
    return job.result


async def test_ingest_optimize_discover_patterns_and_leaderboard(store: Store, procs: Processes):
    procs.start_worker("--processes", "1", "--concurrency", "2")
    ingested = await run(
        store,
        "prices.ingest",
        {"symbols": ["IBM", "MSFT", "NOPE"], "start": "2008-01-01", "end": "2012-12-31"},
    )
    assert set(ingested["stored"]) == {"IBM", "MSFT"}
    assert "NOPE" in ingested["failed"]["NOPE"]  # the bad symbol is reported, the rest stored
    counts = {
        r["symbol"]: r["n"]
        for r in await store.pool.fetch(
            "SELECT symbol, count(*) AS n FROM price_bar GROUP BY symbol"
        )
    }
    expected = SampleProvider().fetch("IBM", None, None, "1d")
    in_window = expected[(expected["ts"] >= "2008-01-01") & (expected["ts"] <= "2012-12-31")]
    assert counts["IBM"] == ingested["stored"]["IBM"]["bars"] == len(in_window)

    grid = {
        "fast": {"start": 5, "stop": 30, "step": 5},
        "slow": {"start": 40, "stop": 200, "step": 40},
    }
    optimized = await run(
        store,
        "strategy.optimize",
        {"symbols": ["IBM"], "family": "ma_crossover", "grid": grid, "split": 0.6},
    )
    ibm = optimized["symbols"]["IBM"]
    assert ibm["runs"] == 2 * 6 * 5  # every parameter set, in and out of sample
    rows = await store.pool.fetch(
        "SELECT params, sample, sharpe, selected FROM strategy_run WHERE kind = 'strategy.optimize'"
    )
    assert len(rows) == 60
    in_sample = {
        (r["params"]["fast"], r["params"]["slow"]): r["sharpe"] for r in rows if r["sample"] == "in"
    }
    best = max(in_sample, key=lambda k: in_sample[k])
    assert (ibm["best"]["params"]["fast"], ibm["best"]["params"]["slow"]) == best
    assert {r["sample"] for r in rows if r["selected"]} == {"in", "out"}
    # the stored out-of-sample figures are the engine's on the same bars
    close = in_window["close"].to_numpy()
    cut = round((len(close) - 1) * 0.6)
    r, position = strategy_returns(close, FAMILIES["ma_crossover"](close, *best), cost=0.0005)
    engine = metrics(r[cut:], position[cut:])  # held positions carry into the out-of-sample
    assert ibm["best"]["out_of_sample"]["sharpe"] == pytest.approx(engine.sharpe, abs=1e-9)
    heat = ibm["grid"]
    assert [a["name"] for a in heat["axes"]] == ["fast", "slow"] and len(heat["values"]) == 6

    discovered = await run(
        store,
        "strategy.discover",
        {"symbols": ["IBM", "MSFT"], "budget": 40, "seed": 7, "folds": 3},
    )
    walk = await store.pool.fetch(
        "SELECT symbol, family, sharpe, benchmark FROM strategy_run"
        " WHERE kind = 'strategy.discover'"
    )
    assert len(walk) == discovered["discovered"] > 0  # the check below has rows to check
    for r in walk:  # kept only when beating buy-and-hold out of sample, after costs
        hold = r["benchmark"]["metrics"]["sharpe"]
        assert hold is None or r["sharpe"] > hold

    patterns = await run(store, "patterns.analyze", {"symbols": ["IBM"], "since": "2010-01-01"})
    found = await store.pool.fetch(
        "SELECT pattern, direction, ts FROM pattern WHERE symbol = 'IBM'"
    )
    assert len(found) == patterns["patterns"] > 0
    assert min(r["ts"] for r in found).year >= 2010
    assert {"engulfing", "doji"} <= {r["pattern"] for r in found}

    board = await run(store, "leaderboard.refresh", {"metric": "sharpe", "limit": 10})
    entries = await store.pool.fetch(
        "SELECT rank, score FROM leaderboard_entry WHERE snapshot_id = $1 ORDER BY rank",
        board["snapshot_id"],
    )
    assert 1 <= len(entries) == board["entries"] <= 10
    scores = [e["score"] for e in entries]
    assert scores == sorted(scores, reverse=True)
    again = await run(store, "leaderboard.refresh", {"metric": "sharpe", "limit": 10})
    snapshots = await store.pool.fetchval("SELECT count(*) FROM leaderboard_snapshot")
    assert again["snapshot_id"] != board["snapshot_id"] and snapshots == 2  # history is kept


async def test_a_job_without_prices_dies_saying_what_to_run(store: Store, procs: Processes):
    procs.start_worker("--processes", "1")
    job_id = (
        await store.enqueue(NewJob(kind="strategy.optimize", payload={"symbols": ["AAPL"]}))
    ).id

    async def dead() -> bool:
        return (await store.get(job_id)).state == JobState.DEAD

    await eventually(dead, 30)
    job = await store.get(job_id)
    assert job.attempt == 1  # permanent: retrying cannot make prices appear
    assert "no 1d bars are stored: run prices.ingest for AAPL first" in job.errors[-1]["message"]
    assert job.errors[-1]["traceback"] is None  # a deliberate failure, said in words


async def test_a_window_with_too_few_bars_names_what_is_stored(store: Store, procs: Processes):
    procs.start_worker("--processes", "1")
    await run(
        store, "prices.ingest", {"symbols": ["IBM"], "start": "2010-01-01", "end": "2010-12-31"}
    )
    job_id = (
        await store.enqueue(
            NewJob(
                kind="strategy.optimize",
                payload={"symbols": ["IBM"], "start": "2012-01-01", "end": "2012-03-01"},
            )
        )
    ).id

    async def dead() -> bool:
        return (await store.get(job_id)).state == JobState.DEAD

    await eventually(dead, 30)
    message = (await store.get(job_id)).errors[-1]["message"]
    assert "0 1d bars from 2012-01-01 to 2012-03-01" in message
    assert "stored bars run from 2010-01-04 to 2010-12-31" in message and "widen" in message
    assert "run prices.ingest for IBM first" not in message


async def test_kill_9_during_an_optimization_stores_its_runs_once(store: Store, procs: Processes):
    await run_ingest_directly(store)
    grid = {"fast": {"start": 5, "stop": 50}, "slow": {"start": 20, "stop": 400}}
    job_id = (
        await store.enqueue(
            NewJob(
                kind="strategy.optimize",
                payload={"symbols": ["IBM", "MSFT"], "grid": grid},
                max_attempts=5,
            )
        )
    ).id
    # 5 s, not 2: while the suite runs tests side by side, a 2 s lease can lapse on a busy
    # machine and add an attempt this test does not count on
    doomed = procs.start_worker("--processes", "1", "--lease", "5s")

    async def computing() -> bool:
        return (await store.get(job_id)).progress > 0

    await eventually(computing, 60)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    procs.start_worker("--processes", "1", "--lease", "5s")

    async def done() -> bool:
        return (await store.get(job_id)).state == JobState.SUCCEEDED

    await eventually(done, 180)
    job = await store.get(job_id)
    assert job.attempt == 2
    sets = sum(1 for f in range(5, 51) for s in range(20, 401) if f < s)
    stored = await store.pool.fetchval(
        "SELECT count(*) FROM strategy_run WHERE job_id = $1", job_id
    )
    assert stored == 2 * 2 * sets  # two symbols, in and out of sample: once each
    assert not np.isnan(job.result["symbols"]["MSFT"]["best"]["out_of_sample"]["sharpe"])


async def test_a_cancelled_optimization_stops_between_chunks_and_stores_nothing(
    store: Store, procs: Processes
):
    await run_ingest_directly(store)
    grid = {"fast": {"start": 5, "stop": 50}, "slow": {"start": 20, "stop": 400}}
    job_id = (
        await store.enqueue(
            NewJob(kind="strategy.optimize", payload={"symbols": ["IBM", "MSFT"], "grid": grid})
        )
    ).id
    worker = procs.start_worker("--processes", "1", "--lease", "3s")  # heartbeat each second

    async def computing() -> bool:
        return (await store.get(job_id)).progress > 0

    await eventually(computing, 60)
    await store.cancel(job_id)

    async def cancelled() -> bool:
        return (await store.get(job_id)).state == JobState.CANCELLED

    await eventually(cancelled, 15)  # seen at a heartbeat; the child stops at its next chunk
    job = await store.get(job_id)
    assert job.progress < 100
    stored = await store.pool.fetchval(
        "SELECT count(*) FROM strategy_run WHERE job_id = $1", job_id
    )
    assert stored == 0
    assert "pool.child_replaced" not in procs.log(worker)  # it stopped by itself


async def run_ingest_directly(store: Store) -> None:
    from kinds.prices import store_bars, validate

    for symbol in ("IBM", "MSFT"):
        bars = validate(symbol, SampleProvider().fetch(symbol, None, None, "1d"))
        await store_bars(store.pool, symbol, "1d", "sample", bars)
