"""MA-crossover grid throughput: fast 5–50 × slow 20–200 (fast < slow: 7,830 backtests) on
2,500 daily bars, full metrics, one process: for one symbol, then for 100 symbols (783,000
backtests), with the peak resident memory of the process; `--spark` adds a local Spark
session against one process on 10 symbols. Then the other families on one symbol, each on
a grid that spans its whole search space (indicator tables included in the time).

    python -m bench.grid [--symbols 100] [--spark]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from datetime import date

import numpy as np

from compute.grid import evaluate_grid, ma_pairs, product
from kinds.prices import SyntheticProvider

BARS = 2500


def closes(symbol: str) -> np.ndarray:
    bars = SyntheticProvider(seed=1).fetch(symbol, date(2010, 1, 1), date(2019, 12, 31), "1d")
    close: np.ndarray = bars["close"].to_numpy(dtype=np.float64)[:BARS]
    return close


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument(
        "--spark", action="store_true", help="also time a local Spark session on 10 symbols"
    )
    args = parser.parse_args()
    pairs = ma_pairs(range(5, 51), range(20, 201))
    series = [closes(f"S{i:03d}") for i in range(args.symbols)]
    evaluate_grid(series[0], "ma_crossover", pairs[:512], cost=0.0005)  # warm up
    runs = sorted(seconds_for(series[:1], pairs) for _ in range(5))
    report(
        "MA grid, full metrics, 1 process, 1 symbol, median of 5 runs",
        len(pairs),
        runs[2],
        fastest_backtests_per_s=round(len(pairs) / runs[0]),
    )
    report(
        f"MA grid, full metrics, 1 process, {len(series)} symbols",
        len(pairs) * len(series),
        seconds_for(series, pairs),
    )
    other_families(series[0])
    if args.spark:
        spark_figures(series[:10], pairs)


OTHER_GRIDS: dict[str, dict[str, Sequence[float]]] = {
    "rsi_reversion": {"period": range(5, 30), "low": range(10, 45, 5), "high": range(55, 95, 5)},
    "donchian_breakout": {"window": range(5, 300)},
    "bollinger_reversion": {"window": range(5, 100, 2), "k": [1.0, 1.5, 2.0, 2.5, 3.0]},
}


def other_families(close: np.ndarray) -> None:
    for family, values in OTHER_GRIDS.items():
        params = product(family, values)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            evaluate_grid(close, family, params, cost=0.0005)
            runs.append(time.perf_counter() - start)
        report(
            f"{family} grid, full metrics, 1 process, 1 symbol, median of 3",
            len(params),
            sorted(runs)[1],
            grid={k: [min(v), max(v), len(v)] for k, v in values.items()},
        )


def seconds_for(series: list[np.ndarray], pairs: np.ndarray) -> float:
    start = time.perf_counter()
    for close in series:
        result = evaluate_grid(close, "ma_crossover", pairs, cost=0.0005)
        assert len(result.metrics[0]["sharpe"]) == len(pairs)
    return time.perf_counter() - start


def report(figure: str, backtests: int, seconds: float, **more: object) -> None:
    """One figure as a JSON line, with the process's peak memory so far."""
    line = {
        "figure": figure,
        "backtests": backtests,
        "bars": BARS,
        "seconds": round(seconds, 3),
        "backtests_per_s": round(backtests / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **more,
    }
    print(json.dumps(line))


def spark_figures(series: list[np.ndarray], pairs: np.ndarray) -> None:
    from compute.grid import GridTask, evaluate_locally
    from compute.spark import evaluate_on_spark, session

    tasks = [
        GridTask(close, "ma_crossover", pairs, [(0, len(close) - 1)], 0.0005) for close in series
    ]
    start = time.perf_counter()
    session()
    started = time.perf_counter() - start
    for label, evaluate in (("local", evaluate_locally), ("spark local[*]", evaluate_on_spark)):
        start = time.perf_counter()
        evaluate(tasks, None)
        seconds = time.perf_counter() - start
        backtests = len(pairs) * len(tasks)
        print(
            json.dumps(
                {
                    "figure": f"MA grid, {len(tasks)} symbols, {label}",
                    "backtests": backtests,
                    "seconds": round(seconds, 3),
                    "backtests_per_s": round(backtests / seconds),
                    **({"session_start_s": round(started, 1)} if label != "local" else {}),
                }
            )
        )


if __name__ == "__main__":
    main()
