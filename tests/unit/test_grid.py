"""The vectorised grid agrees with the single-backtest engine, row for row, to 1e-9."""

from datetime import date

import numpy as np
import pytest

from compute.backtest import backtest, ma_crossover
from compute.grid import evaluate_ma_grid, ma_pairs
from compute.prices import SampleProvider, SyntheticProvider


@pytest.mark.parametrize("source", ["sample", "synthetic"])
def test_every_row_matches_the_engine(source):
    if source == "sample":
        bars = SampleProvider().fetch("IBM", date(2004, 1, 1), date(2012, 12, 31), "1d")
    else:
        bars = SyntheticProvider(seed=3).fetch("X", date(2010, 1, 1), date(2019, 12, 31), "1d")
    close = bars["close"].to_numpy()
    pairs = ma_pairs(range(5, 51, 9), range(20, 201, 45))
    grid = evaluate_ma_grid(close, pairs, cost=0.0005, risk_free=0.01, chunk=7)
    assert len(grid.params) == len(pairs) and len(grid.metrics["sharpe"]) == len(pairs)
    for i, (fast, slow) in enumerate(pairs):
        single, _ = backtest(close, ma_crossover(close, int(fast), int(slow)), 0.0005, 0.01)
        for name, expected in single.as_dict().items():
            got = grid.metrics[name][i]
            if np.isnan(expected):
                assert np.isnan(got), (fast, slow, name)
            else:
                assert got == pytest.approx(expected, abs=1e-9, rel=1e-9), (fast, slow, name)


def test_pairs_keep_fast_below_slow():
    pairs = ma_pairs(range(5, 51), range(20, 201))
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len(pairs) == 7830  # the benchmark grid: fast 5–50, slow 20–200
