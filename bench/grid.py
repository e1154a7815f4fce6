"""MA-crossover grid throughput: fast 5–50 × slow 20–200 (fast < slow: 7,830 backtests) on
2,500 daily bars of one symbol, full metrics, one process.

    python -m bench.grid
"""

from __future__ import annotations

import json
import resource
import time
from datetime import date

from compute.grid import evaluate_ma_grid, ma_pairs
from compute.prices import SyntheticProvider


def main() -> None:
    bars = SyntheticProvider(seed=1).fetch("BENCH", date(2010, 1, 1), date(2019, 12, 31), "1d")
    close = bars["close"].to_numpy()[:2500]
    pairs = ma_pairs(range(5, 51), range(20, 201))
    evaluate_ma_grid(close, pairs[:512], cost=0.0005)  # warm up
    start = time.perf_counter()
    result = evaluate_ma_grid(close, pairs, cost=0.0005)
    seconds = time.perf_counter() - start
    assert len(result.metrics["sharpe"]) == len(pairs)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "figure": "MA grid, full metrics, 1 process",
                "backtests": len(pairs),
                "bars": len(close),
                "seconds": round(seconds, 3),
                "backtests_per_s": round(len(pairs) / seconds),
                "peak_rss_mib": round(peak_mib),
            }
        )
    )


if __name__ == "__main__":
    main()
