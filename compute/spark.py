"""Optional: the optimization and discovery grids across Spark executors.

Enabled by `USE_SPARK=1` (a local session on this machine's cores) or `SPARK_MASTER=spark://…`
(a cluster), with the `spark` extra installed; nothing imports pyspark otherwise. Each grid
is cut into chunks of parameter sets, the chunks are spread over the executors with
`mapInPandas`, and every chunk is evaluated by the same `compute.grid.evaluate_grid` the
local path runs. A row's figures do not depend on the chunk it is evaluated in, so they
are identical to the local path's to the last bit (a test checks it).

One session per process, started on first use and kept: starting one costs 10–20 s. It pays
off for many symbols on a real cluster; on a 2-core machine it is no faster than one process
(see docs/research.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from compute.grid import GridResult, GridTask, evaluate_grid
from compute.specs import METRIC_NAMES


class SparkSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    use_spark: bool = Field(default=False, description="USE_SPARK=1: a local Spark session")
    spark_master: str | None = Field(default=None, description="e.g. spark://host:7077")
    spark_chunk: int = Field(default=1024, ge=1, description="parameter sets per Spark task")

    @property
    def enabled(self) -> bool:
        return self.use_spark or bool(self.spark_master)


@cache
def session() -> Any:
    """The process's one SparkSession."""
    from pyspark.sql import SparkSession

    settings = SparkSettings()
    # executors must run this interpreter, or they miss numpy and pandas
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(settings.spark_master or "local[*]")
        .appName("conveyor-research")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )


def _chunks(tasks: Sequence[GridTask], size: int) -> list[tuple[int, int, int]]:
    return [
        (t, lo, min(lo + size, len(task.params)))
        for t, task in enumerate(tasks)
        for lo in range(0, len(task.params), size)
    ]


def evaluate_on_spark(
    tasks: Sequence[GridTask], progress: Callable[[int], None] | None = None
) -> list[GridResult]:
    """The same results as `compute.grid.evaluate_locally`, computed by the executors.
    Progress is reported once, when the Spark job is done (a job is not interrupted)."""
    import pandas as pd

    spark = session()
    chunks = _chunks(tasks, SparkSettings().spark_chunk)
    shipped = spark.sparkContext.broadcast(list(tasks))
    segments_of = [len(t.segments) for t in tasks]
    columns = ", ".join(f"{m} double" for m in METRIC_NAMES)
    schema = f"task int, row int, segment int, {columns}"

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        todo = shipped.value
        for frame in frames:
            for t, lo, hi in frame.itertuples(index=False):
                task = todo[t]
                result = evaluate_grid(
                    task.close,
                    task.family,
                    task.params[lo:hi],
                    task.segments,
                    task.cost,
                    task.risk_free,
                )
                for s, values in enumerate(result.metrics):
                    yield pd.DataFrame(
                        {
                            "task": t,
                            "row": np.arange(lo, hi, dtype=np.int32),
                            "segment": s,
                            **{m: values[m] for m in METRIC_NAMES},
                        }
                    )

    plan = spark.createDataFrame(chunks, "task int, lo int, hi int").repartition(
        max(1, min(len(chunks), spark.sparkContext.defaultParallelism * 4))
    )
    rows = plan.mapInPandas(run, schema=schema).toPandas()
    shipped.unpersist()
    results = []
    for t, task in enumerate(tasks):
        mine = rows[rows["task"] == t]
        per_segment = []
        for s in range(segments_of[t]):
            part = mine[mine["segment"] == s].sort_values("row")
            per_segment.append({m: part[m].to_numpy(dtype=np.float64) for m in METRIC_NAMES})
        results.append(GridResult(task.family, task.params, list(task.segments), per_segment))
    if progress is not None:
        progress(sum(len(t.params) for t in tasks))
    return results
