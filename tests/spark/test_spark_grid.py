"""The grids on a real local Spark session give the local path's results, bit for bit.

Runs where pyspark and Java are present (the `spark` test extra and Java 17 in CI): one
module, so the session's 10–20 s start is paid once."""

from __future__ import annotations

import shutil
from datetime import date

import numpy as np
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17 or newer) on PATH", allow_module_level=True)

from compute import research
from compute.grid import GridTask, evaluate_locally, ma_pairs, product
from compute.spark import evaluate_on_spark
from compute.specs import METRIC_NAMES
from kinds.prices import SampleProvider

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def closes() -> dict[str, np.ndarray]:
    return {
        s: SampleProvider().fetch(s, date(2005, 1, 1), date(2012, 12, 31), "1d")["close"].to_numpy()
        for s in ("IBM", "MSFT", "AAPL")
    }


def test_optimization_and_discovery_grids_match_the_local_path(closes, monkeypatch):
    monkeypatch.setenv("SPARK_CHUNK", "160")  # several tasks per grid, across executors
    tasks = [
        research.optimize_task(
            close, "ma_crossover", ma_pairs(range(5, 40, 3), range(20, 200, 9)), 0.7, 0.0005, 0.01
        )[0]
        for close in closes.values()
    ]
    candidates = research.sample_params("bollinger_reversion", 70, np.random.default_rng(5))
    training = research.training_task(
        closes["IBM"], "bollinger_reversion", candidates, 3, 0.0005, 0
    )
    assert training is not None
    tasks.append(training)
    tasks.append(
        GridTask(
            closes["MSFT"],
            "rsi_reversion",
            product(
                "rsi_reversion", {"period": [7, 14], "low": [25.0, 30.0], "high": [65.0, 70.0]}
            ),
            [(0, 1000)],
        )
    )
    reported = []
    remote = evaluate_on_spark(tasks, reported.append)
    local = evaluate_locally(tasks)
    assert reported == [sum(len(t.params) for t in tasks)]
    for mine, theirs in zip(remote, local, strict=True):
        assert len(mine.metrics) == len(theirs.metrics)
        for a, b in zip(mine.metrics, theirs.metrics, strict=True):
            for name in METRIC_NAMES:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
