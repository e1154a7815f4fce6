"""What a stored strategy run did, bar by bar: its equity against buy-and-hold, its drawdown
and its trades, recomputed from the stored prices by the same engine that scored it.

A run stores its metrics, not its path (an optimization stores tens of thousands of runs; a
page shows one). The path is cheap to recompute and is exactly what was scored, because
the run records enough to rebuild its series: an optimization's in- and out-of-sample runs of
one parameter set cover the whole series between them, and a walk-forward run records each
fold's window and parameters (`benchmark.folds`). `replay` returns the metrics of what it
recomputed, so a caller can see that they are the stored ones (they differ only when the
bars were re-ingested with other values since).

Pure: prices and the run's record in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compute.backtest import FAMILIES, Metrics, metrics, strategy_returns

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Fold:
    start: int
    """[start, end) of the series' returns traded with `params`."""
    end: int
    params: dict[str, Any]
    traded: bool = True
    """False: nothing was defined on the bars before the fold, so it stayed flat."""


def stitch(close: Array, family: str, folds: Sequence[Fold], cost: float) -> tuple[Array, Array]:
    """(returns, positions) over the folds, each traded with its own parameters. Switching
    parameters at a fold's first bar trades from what the previous fold held, not from what
    the new parameters would have held before the fold."""
    r_parts: list[Array] = []
    p_parts: list[Array] = []
    previous = 0.0
    for fold in folds:
        a, b = fold.start, fold.end
        signal = FAMILIES[family](close, **fold.params) if fold.traded else np.zeros(len(close))
        r, position = strategy_returns(close, signal, cost)
        r, position = r[a:b].copy(), position[a:b]
        r[0] += cost * abs(position[0] - (signal[a - 1] if a > 0 else 0.0))
        r[0] -= cost * abs(position[0] - previous)
        previous = float(position[-1])
        r_parts.append(r)
        p_parts.append(position)
    return np.concatenate(r_parts), np.concatenate(p_parts)


@dataclass(frozen=True)
class Trade:
    direction: str
    """long or short"""
    entry: int
    """Index of the bar at whose close the position was taken."""
    exit: int | None
    """Index of the bar at whose close it was left; None while still open at the end."""
    ret: float
    """Compounded return over the bars held, after costs."""


def trades(returns: Array, positions: Array) -> list[Trade]:
    """Stretches of one non-zero sign of position, as `backtest.trade_stats` counts them;
    indices are of bars, relative to the segment's first bar (return t runs from bar t to
    bar t+1, so a position held over returns [s, t) is entered at bar s and left at bar t)."""
    out = []
    sign = np.sign(positions)
    start: int | None = None
    for t in range(len(sign) + 1):
        current = sign[t] if t < len(sign) else 0.0
        previous = sign[t - 1] if t > 0 else 0.0
        if current != previous:
            if previous != 0 and start is not None:
                closed = t < len(sign)
                out.append(
                    Trade(
                        direction="long" if previous > 0 else "short",
                        entry=start,
                        exit=t if closed else None,
                        ret=float(np.prod(1.0 + returns[start:t]) - 1.0),
                    )
                )
            start = t if current != 0 else None
    return out


@dataclass(frozen=True)
class Replay:
    first: int
    """The bar the segment starts at: equity is 1 there."""
    equity: Array
    """One value per bar from `first` on (one more than the returns)."""
    buy_and_hold: Array
    drawdown: Array
    """equity / running peak − 1, ≤ 0."""
    trades: list[Trade]
    metrics: Metrics
    buy_and_hold_metrics: Metrics


def _equity(returns: Array) -> Array:
    return np.concatenate([[1.0], np.cumprod(1.0 + returns)])


def replay(
    close: Array,
    family: str,
    cost: float,
    risk_free: float,
    segment: tuple[int, int],
    params: dict[str, Any] | None = None,
    folds: Sequence[Fold] | None = None,
) -> Replay:
    """Recompute one run on its series: `params` over the segment's returns (an optimization's
    in- or out-of-sample run), or `folds` (a walk-forward run, whose segment they cover)."""
    a, b = segment
    if folds:
        returns, positions = stitch(close, family, folds, cost)
    elif params is not None:
        r, p = strategy_returns(close, FAMILIES[family](close, **params), cost)
        returns, positions = r[a:b], p[a:b]
    else:
        raise ValueError("a replay needs the run's parameters or its folds")
    hold_r, hold_p = strategy_returns(close, np.ones(len(close)), cost)
    equity = _equity(returns)
    return Replay(
        first=a,
        equity=equity,
        buy_and_hold=_equity(hold_r[a:b]),
        drawdown=equity / np.maximum.accumulate(equity) - 1.0,
        trades=trades(returns, positions),
        metrics=metrics(returns, positions, risk_free),
        buy_and_hold_metrics=metrics(hold_r[a:b], hold_p[a:b], risk_free),
    )
