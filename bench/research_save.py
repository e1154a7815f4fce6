"""Storing an optimization's runs: one `strategy.optimize` of 15,577 parameter sets on the
sample AAPL bars (31,154 runs), through the kind's own load → compute → save, on an embedded
durable cluster. The save is timed for a first attempt (COPY) and a repeated one (the
upsert that keeps the rows' ids), three times each in fresh databases; compute beside it.

    python -m bench.research_save
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.store import fresh_store, make_template, run_on_server
from compute.specs import PricesIngest
from jobs.model import NewJob
from kinds.research import ingest, save_ingest
from worker.registry import default_registry

GRID = {"fast": {"start": 2, "stop": 75, "step": 1}, "slow": {"start": 3, "stop": 249, "step": 1}}
REPEATS = 3


class _Quiet:
    """A job context that keeps nothing and is never cancelled."""

    def progress(self, percent: int, message: str | None = None) -> None:
        pass

    def cancelled(self) -> bool:
        return False


async def once(server_url: str, round_: int) -> dict[str, float]:
    store = await fresh_store(server_url, f"bench_save_{round_}")
    try:
        sample = PricesIngest(symbols=["AAPL"], provider="sample")
        await store.enqueue(NewJob(kind="prices.ingest", queue="setup"))
        (setup,) = await store.claim(["setup"], 1, "bench", 60)
        await save_ingest(store.db, setup, sample, ingest(_Quiet(), sample))  # type: ignore[arg-type]

        spec = default_registry().get("strategy.optimize")
        assert spec is not None
        assert spec.load is not None
        assert spec.save is not None
        payload: dict[str, Any] = {"symbols": ["AAPL"], "grid": GRID}
        model = spec.payload.model_validate(payload)
        await store.enqueue(NewJob(kind="strategy.optimize", payload=payload, owner="key:bench"))
        (job,) = await store.claim(["default"], 1, "bench", 600)
        inputs = await spec.load(store.db, job, model)
        t = time.perf_counter()
        output = spec.handler(_Quiet(), model, inputs)
        computed = time.perf_counter() - t
        t = time.perf_counter()
        result = await spec.save(store.db, job, model, output)
        first = time.perf_counter() - t
        t = time.perf_counter()
        await spec.save(store.db, job, model, output)
        repeated = time.perf_counter() - t
        runs = await store.pool.fetchval("SELECT count(*) FROM strategy_run")
        assert runs == result["symbols"]["AAPL"]["runs"] == 31_154
        return {"runs": runs, "compute_s": computed, "save_s": first, "save_again_s": repeated}
    finally:
        await store.close()


async def main(server_url: str) -> None:
    await make_template(server_url)
    rounds = [await once(server_url, i) for i in range(REPEATS)]
    figures: dict[str, Any] = {"runs": rounds[0]["runs"]}
    for key in ("compute_s", "save_s", "save_again_s"):
        values = [r[key] for r in rounds]
        figures[key] = {
            "median": round(statistics.median(values), 3),
            "range": [round(min(values), 3), round(max(values), 3)],
        }
    print(json.dumps({"research_save": figures}))


if __name__ == "__main__":
    run_on_server(main)
