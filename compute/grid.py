"""A parameter grid evaluated as matrices: one row per parameter set, no Python loop per
backtest. The same definitions as `compute.backtest` (a test checks they agree to 1e-9).

Memory is bounded by evaluating `chunk` rows at a time: each chunk holds a few
(chunk × bars) float64 matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from compute.backtest import PERIODS_PER_YEAR, moving_average, simple_returns

Array = NDArray[np.float64]


@dataclass(frozen=True)
class GridResult:
    params: NDArray[np.int64]
    """(rows, 2): fast, slow."""
    metrics: dict[str, Array]
    """Each metric as one value per row."""


def ma_pairs(fast: range, slow: range) -> NDArray[np.int64]:
    """Every (fast, slow) with fast < slow."""
    return np.array([(f, s) for f in fast for s in slow if f < s], dtype=np.int64)


def _longest_true_run(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per row, the longest run of True."""
    rows, cols = mask.shape
    idx = np.arange(cols)
    # position of the last False at or before each column; a run's length is the distance
    last_false = np.where(~mask, idx, -1)
    np.maximum.accumulate(last_false, axis=1, out=last_false)
    lengths = np.where(mask, idx - last_false, 0)
    return lengths.max(axis=1) if cols else np.zeros(rows, dtype=np.int64)


def _trade_stats(r: Array, position: Array) -> tuple[NDArray[np.int64], Array]:
    """(closed trades, win rate) per row; long/flat positions (0 or 1)."""
    rows, n = position.shape
    held = position != 0
    previous = np.concatenate([np.zeros((rows, 1), dtype=bool), held[:, :-1]], axis=1)
    following = np.concatenate([held[:, 1:], np.zeros((rows, 1), dtype=bool)], axis=1)
    entries = held & ~previous
    exits_here = held & ~following  # last bar of a run
    closed_end = exits_here.copy()
    closed_end[:, -1] = False  # a run reaching the end is still open
    trades = closed_end.sum(axis=1)
    # Compounded return of each run: sum of log(1 + r) over the run, via cumulative sums.
    logs = np.where(held, np.log1p(r), 0.0)
    csum = np.cumsum(logs, axis=1)
    before = np.concatenate([np.zeros((rows, 1)), csum[:, :-1]], axis=1)
    # For each closed run end, the run's start is the latest entry at or before it.
    start_mark = np.where(entries, np.arange(n), -1)
    np.maximum.accumulate(start_mark, axis=1, out=start_mark)
    row_idx, end_idx = np.nonzero(closed_end)
    start_idx = start_mark[row_idx, end_idx]
    run_log = csum[row_idx, end_idx] - before[row_idx, start_idx]
    wins = np.bincount(row_idx, weights=(run_log > 0).astype(float), minlength=rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(trades > 0, wins / np.maximum(trades, 1), np.nan)
    return trades, win_rate


def evaluate_ma_grid(
    close: Array,
    pairs: NDArray[np.int64],
    cost: float = 0.0,
    risk_free: float = 0.0,
    chunk: int = 512,
) -> GridResult:
    close = np.asarray(close, dtype=np.float64)
    r = simple_returns(close)
    windows = np.unique(pairs)
    averages = {int(w): moving_average(close, int(w)) for w in windows}
    parts: dict[str, list[Array]] = {}
    root = np.sqrt(PERIODS_PER_YEAR)
    for lo in range(0, len(pairs), chunk):
        block = pairs[lo : lo + chunk]
        fast = np.stack([averages[int(f)] for f in block[:, 0]])
        slow = np.stack([averages[int(s)] for s in block[:, 1]])
        with np.errstate(invalid="ignore"):
            signal = ((fast > slow) & ~np.isnan(slow)).astype(np.float64)
        position = signal[:, :-1]
        traded = np.abs(np.diff(position, axis=1, prepend=0.0))
        sr = position * r - cost * traded
        n = sr.shape[1]
        excess = sr - risk_free / PERIODS_PER_YEAR
        total = np.expm1(np.log1p(sr).sum(axis=1))
        cagr = (1.0 + total) ** (PERIODS_PER_YEAR / n) - 1.0
        std = sr.std(axis=1, ddof=1)
        ex_mean, ex_std = excess.mean(axis=1), excess.std(axis=1, ddof=1)
        downside = np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2, axis=1))
        equity = np.concatenate([np.ones((len(block), 1)), np.cumprod(1.0 + sr, axis=1)], axis=1)
        peak = np.maximum.accumulate(equity, axis=1)
        max_dd = (equity / peak - 1.0).min(axis=1)
        trades, win_rate = _trade_stats(sr, position)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = {
                "total_return": total,
                "cagr": cagr,
                "annual_volatility": std * root,
                "sharpe": np.where(ex_std > 0, ex_mean / ex_std, np.nan) * root,
                "sortino": np.where(downside > 0, ex_mean / downside, np.nan) * root,
                "max_drawdown": max_dd,
                "max_drawdown_duration": _longest_true_run(equity < peak).astype(np.float64),
                "calmar": np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan),
                "win_rate": win_rate,
                "trades": trades.astype(np.float64),
                "exposure": (position != 0).mean(axis=1),
            }
        for name, v in values.items():
            parts.setdefault(name, []).append(v)
    return GridResult(pairs, {k: np.concatenate(v) for k, v in parts.items()})
