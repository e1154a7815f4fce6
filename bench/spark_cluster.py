"""When a Spark cluster pays off: the same MA-crossover grid (fast 5–50 × slow 20–200, 7,830
parameter sets a symbol, on 2,500 synthetic daily bars) in one process, then on a standalone
cluster of one worker and of two (each `--cores` cores and 1 GiB, on 127.0.0.1, started from
pyspark's spark-class by conveyor.spark_cluster). Spark's wall time includes the session's
start; the grid is then run a second time on the same session (what a worker's later jobs
pay). Each Spark figure comes from a fresh Python process, as a Conveyor worker's pool child
would start one (a second session in one process would reuse the first one's JVM), which
also checks the cluster's results against the local path's, bit for bit.

    python -m bench.spark_cluster [--symbols 10] [--chunk 1024] [--cores 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.grid import closes
from compute.grid import GridResult, GridTask, evaluate_locally, ma_pairs
from compute.specs import METRIC_NAMES
from conveyor.spark_cluster import SparkCluster


def tasks(symbols: int) -> list[GridTask]:
    pairs = ma_pairs(range(5, 51), range(20, 201))
    return [
        GridTask(close, "ma_crossover", pairs, [(0, len(close) - 1)], 0.0005)
        for close in (closes(f"S{i:03d}") for i in range(symbols))
    ]


def identical(a: list[GridResult], b: list[GridResult]) -> bool:
    return all(
        np.array_equal(x[m], y[m], equal_nan=True)
        for ra, rb in zip(a, b, strict=True)
        for x, y in zip(ra.metrics, rb.metrics, strict=True)
        for m in METRIC_NAMES
    )


def drive(symbols: int) -> None:
    """In the child process: a session on SPARK_MASTER, the grid twice, one JSON line."""
    from compute.spark import evaluate_on_spark, session

    grid = tasks(symbols)
    start = time.perf_counter()
    session()
    started = time.perf_counter() - start
    first = evaluate_on_spark(grid)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    evaluate_on_spark(grid)
    warm = time.perf_counter() - start
    print(
        json.dumps(
            {
                "session_start_s": round(started, 1),
                "first_grid_with_start_s": round(cold, 1),
                "second_grid_s": round(warm, 1),
                "identical_to_local": identical(first, evaluate_locally(grid)),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=1024, help="SPARK_CHUNK")
    parser.add_argument("--cores", type=int, default=1, help="cores of each Spark worker")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.symbols)
        return
    grid = tasks(args.symbols)
    backtests = sum(len(t.params) for t in grid)
    settings = {"symbols": args.symbols, "backtests": backtests, "spark_chunk": args.chunk}
    evaluate_locally(grid[:1])  # warm up
    start = time.perf_counter()
    evaluate_locally(grid)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "figure": "one process (the local path)",
                **settings,
                "seconds": round(seconds, 2),
                "backtests_per_s": round(backtests / seconds),
            }
        )
    )
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            with SparkCluster(Path(folder), workers=workers, cores=args.cores) as cluster:
                up = time.perf_counter() - start
                driver = [sys.executable, "-m", "bench.spark_cluster", "--drive"]
                child = subprocess.run(
                    [*driver, "--symbols", str(args.symbols)],
                    env={
                        **os.environ,
                        "SPARK_MASTER": cluster.master_url,
                        "SPARK_CHUNK": str(args.chunk),
                        "SPARK_LOCAL_IP": "127.0.0.1",
                    },
                    capture_output=True,
                    text=True,
                    check=True,
                )
            figures = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            json.dumps(
                {
                    "figure": f"standalone cluster, {workers} worker(s) of {args.cores} core(s)",
                    **settings,
                    "cluster_start_s": round(up, 1),
                    **figures,
                    "second_grid_backtests_per_s": round(backtests / figures["second_grid_s"]),
                }
            )
        )


if __name__ == "__main__":
    main()
