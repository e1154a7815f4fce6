"""One vectorised backtest engine (numpy) and the metrics every research kind reports.

Conventions, stored with every run because libraries disagree on them (see METRIC_CONVENTIONS):

- A signal computed from the close of bar t is the position held from t to t+1: positions
  are the signals shifted by one bar, so no strategy sees the bar it trades on.
- Strategy return of bar t: position(t) × simple return(t) − cost × |position(t) −
  position(t−1)|, with `cost` a proportion of the traded value (0.0005 = 5 basis points).
- Daily returns, 252 periods a year; the risk-free rate is annual and taken off per period
  as rf / 252.
- Sharpe: mean(excess) / std(excess, ddof=1) × √252; undefined for constant returns (see
  VOLATILITY_FLOOR).
- Sortino: mean(excess) / √mean(min(excess, 0)²) × √252 (downside deviation over all
  periods, target 0, as empyrical computes it).
- CAGR: (1 + total return)^(252 / periods) − 1 (−1 once equity is wiped out); Calmar: CAGR
  / |max drawdown|.
- Max drawdown: the worst fall of the equity curve (which starts at 1 before the first
  return) from its running peak; its duration: the most consecutive periods spent below a
  peak (by more than DRAWDOWN_EPSILON of it, 1e-10).
- A trade is a stretch of non-zero position of one sign; win rate: closed trades whose
  compounded return is above zero (above WIN_EPSILON, 1e-12), over closed trades.
  Exposure: share of periods in a position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

PERIODS_PER_YEAR = 252
WIN_EPSILON = 1e-12
"""A trade counts as a win when its return is above this, not merely above 0: a trade that
nets exactly nothing (common with prices on a tick grid) computes as ±1e-16 depending on the
order of the products, and must not be a win in one evaluation and a loss in another."""
SIGNAL_EPSILON = 1e-12
"""A price is above (below) an average or band only when it is so by more than this share
of the price. An average over identical closes (a flat, tick-rounded stretch) computes from
cumulative sums as a few units of 1e-16 away from them, and two averages that are equal
(an exact tie) as one a hair above the other: without it a flat window's zero-width band
let `close < mean − k·std` hold and the Bollinger strategy buy where its rule says flat.
Real differences on a tick grid are far larger (0.01 over 200 × 200 bars is 2.5e-7)."""
DRAWDOWN_EPSILON = 1e-10
"""A period is below its peak when its equity is below the peak by more than this share: an
equity that returns exactly to its peak (prices on a tick grid do) computes as a few units of
1e-16 above or below it depending on the order of the products, and must count as at the
peak in every evaluation."""
VOLATILITY_FLOOR = 1e-6
"""Returns whose standard deviation is below this share of their root mean square are
constant: their volatility is 0 and their Sharpe undefined. Computed, a constant series's
standard deviation is a residue (1e-17 here, 1e-8 of its size from the grid's sums), which
would make its Sharpe ±1e16."""
METRIC_CONVENTIONS = {"periods_per_year": PERIODS_PER_YEAR, "ddof": 1, "returns": "simple"}

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Metrics:
    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration: int
    calmar: float
    win_rate: float
    trades: int
    exposure: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def simple_returns(close: Array) -> Array:
    return close[1:] / close[:-1] - 1.0


def strategy_returns(close: Array, signal: Array, cost: float = 0.0) -> tuple[Array, Array]:
    """(per-period strategy returns, positions) for signals taken at each close."""
    r = simple_returns(np.asarray(close, dtype=np.float64))
    position = np.asarray(signal, dtype=np.float64)[:-1]  # signal at t is held over t → t+1
    traded = np.abs(np.diff(position, prepend=0.0))
    return position * r - cost * traded, position


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def drawdown(returns: Array) -> tuple[float, int]:
    """(max drawdown, longest run of periods below a peak)."""
    equity = np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    peak = np.maximum.accumulate(equity)
    below = equity < peak * (1.0 - DRAWDOWN_EPSILON)
    worst = float(np.min(equity / peak - 1.0))
    longest = run = 0
    for flag in below:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return worst, longest


def trade_stats(returns: Array, position: Array) -> tuple[int, float]:
    """(closed trades, win rate): a trade is a run of one non-zero sign of position."""
    sign = np.sign(position)
    trades = wins = 0
    start = None
    for t in range(len(sign) + 1):
        current = sign[t] if t < len(sign) else 0.0
        previous = sign[t - 1] if t > 0 else 0.0
        if current != previous:
            if previous != 0 and start is not None and t < len(sign):  # closed before the end
                trades += 1
                wins += float(np.prod(1.0 + returns[start:t]) - 1.0) > WIN_EPSILON
            start = t if current != 0 else None
    return trades, (wins / trades if trades else float("nan"))


def metrics(returns: Array, position: Array | None = None, risk_free: float = 0.0) -> Metrics:
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    excess = r - risk_free / PERIODS_PER_YEAR
    total = float(np.prod(1.0 + r) - 1.0)
    if not n:
        cagr = float("nan")
    elif total > -1.0:
        cagr = float((1.0 + total) ** (PERIODS_PER_YEAR / n) - 1.0)
    else:  # equity wiped out (a fall of 95 % or more with a 5 % cost)
        cagr = -1.0
    std = float(np.std(r, ddof=1)) if n > 1 else float("nan")
    if std <= VOLATILITY_FLOOR * float(np.sqrt(np.mean(r * r))):
        std = 0.0  # constant returns, not a rounding residue
    # std(excess) is std(r), and taking it of r adds no residue of its own
    excess_std = std
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))) if n else float("nan")
    root = np.sqrt(PERIODS_PER_YEAR)
    max_dd, dd_duration = drawdown(r)
    pos = np.ones(n) if position is None else np.asarray(position, dtype=np.float64)
    trades, win_rate = trade_stats(r, pos)
    return Metrics(
        total_return=total,
        cagr=cagr,
        annual_volatility=std * root,
        sharpe=_safe_ratio(float(np.mean(excess)), excess_std) * root,
        sortino=_safe_ratio(float(np.mean(excess)), downside) * root,
        max_drawdown=max_dd,
        max_drawdown_duration=dd_duration,
        calmar=_safe_ratio(cagr, abs(max_dd)),
        win_rate=win_rate,
        trades=trades,
        exposure=float(np.mean(pos != 0)) if n else 0.0,
    )


def backtest(
    close: Array, signal: Array, cost: float = 0.0, risk_free: float = 0.0
) -> tuple[Metrics, Array]:
    """(metrics, equity curve) of trading `signal` on `close`."""
    r, position = strategy_returns(close, signal, cost)
    return metrics(r, position, risk_free), np.concatenate([[1.0], np.cumprod(1.0 + r)])


# -- strategy families: signals from prices and parameters --------------------------------


def moving_average(close: Array, window: int) -> Array:
    """Simple moving average from one cumulative sum; NaN until `window` closes exist."""
    c = np.concatenate([[0.0], np.cumsum(close, dtype=np.float64)])
    out = np.full(len(close), np.nan)
    out[window - 1 :] = (c[window:] - c[:-window]) / window
    return out


def ma_crossover(close: Array, fast: int, slow: int, short: bool = False) -> Array:
    """Long while the fast average is above the slow one; flat (or short) otherwise."""
    f, s = moving_average(close, fast), moving_average(close, slow)
    ready = ~np.isnan(s)
    above = f > s + SIGNAL_EPSILON * np.abs(s)
    return np.where(ready & above, 1.0, np.where(ready & short, -1.0, 0.0))


def rsi(close: Array, period: int) -> Array:
    """Wilder's RSI; NaN for the first `period` closes."""
    delta = np.diff(close, prepend=close[0])
    gain, loss = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
    out = np.full(len(close), np.nan)
    if len(close) <= period:
        return out
    avg_gain, avg_loss = float(gain[1 : period + 1].mean()), float(loss[1 : period + 1].mean())
    gains, losses = [avg_gain], [avg_loss]
    keep = period - 1
    # Wilder's smoothing is sequential: a loop over Python floats, the same IEEE arithmetic
    # as numpy's scalars at a fraction of the cost
    for g, loss_t in zip(gain[period + 1 :].tolist(), loss[period + 1 :].tolist(), strict=True):
        avg_gain = (avg_gain * keep + g) / period
        avg_loss = (avg_loss * keep + loss_t) / period
        gains.append(avg_gain)
        losses.append(avg_loss)
    up, down = np.array(gains), np.array(losses)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[period:] = np.where(down == 0, 100.0, 100.0 - 100.0 / (1.0 + up / down))
    return out


def rsi_reversion(close: Array, period: int, low: float, high: float) -> Array:
    """Enter long when RSI falls below `low`, leave when it rises above `high`."""
    value = rsi(close, period)
    signal = np.zeros(len(close))
    holding = 0.0
    for t, v in enumerate(value):
        if not np.isnan(v):
            if v < low:
                holding = 1.0
            elif v > high:
                holding = 0.0
        signal[t] = holding
    return signal


def donchian_breakout(close: Array, window: int) -> Array:
    """Long after a close above the previous `window` closes' high, out below their low."""
    signal = np.zeros(len(close))
    holding = 0.0
    for t in range(window, len(close)):
        past = close[t - window : t]
        if close[t] > past.max():
            holding = 1.0
        elif close[t] < past.min():
            holding = 0.0
        signal[t] = holding
    return signal


def bollinger_reversion(close: Array, window: int, k: float) -> Array:
    """Long below the lower band (mean − k·std), out at the mean."""
    mean = moving_average(close, window)
    sq = moving_average(close**2, window)
    std = np.sqrt(np.maximum(sq - mean**2, 0.0) * window / max(window - 1, 1))
    signal = np.zeros(len(close))
    holding = 0.0
    for t in range(len(close)):
        if np.isnan(mean[t]):
            continue
        margin = SIGNAL_EPSILON * abs(close[t])
        if close[t] < mean[t] - k * std[t] - margin:
            holding = 1.0
        elif close[t] >= mean[t] - margin:
            holding = 0.0
        signal[t] = holding
    return signal


FAMILIES: dict[str, Callable[..., Array]] = {
    "ma_crossover": ma_crossover,
    "rsi_reversion": rsi_reversion,
    "donchian_breakout": donchian_breakout,
    "bollinger_reversion": bollinger_reversion,
}
