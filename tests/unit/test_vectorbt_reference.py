"""vectorbt, an independent backtester, agrees with the vectorised grid on an MA-crossover grid
over real prices (IBM 2004–2012), row for row, to 1e-9 (absolute and relative).

vectorbt computes the moving averages (its rolling mean) and simulates the trades
(`Portfolio.from_orders`); only the mapping between its conventions and ours is written here:

- Our signal at close t is the position over the return from t to t+1, so vectorbt enters at
  the close of the bar where the fast average rises above the slow one and exits at the close
  where it stops being above (orders at the close, all cash, 1 of initial cash, no fees, no
  slippage). Its value series then equals our equity curve, which starts at 1.
- vectorbt's returns have one more bar than ours: bar 0, the return of the first close's value
  over the initial cash (0 here). The return-based metrics (Sharpe, Sortino, volatility, CAGR,
  Calmar) are taken of its returns without that bar, with 252 periods a year
  (freq 1 day, year_freq 252 days; its default is 365) and the risk-free rate per period as
  rf / 252; Sharpe ddof=1 and Sortino's downside deviation over all periods are its defaults.
  (Its Calmar takes the drawdown of those returns, which misses the starting 1 as a peak; that
  is ours here because every row is flat over the first return: slow ≥ 20.)
- Max drawdown and its duration come from the portfolio's value (bar 0 included); a
  drawdown's duration in vectorbt is its bars below the peak, which is ours.
- Trades and win rate: closed trades only (vectorbt wins on PnL > 0, ours on return > 1e-12;
  at cost 0 a trade that exits at its entry price is no win in either).
- Exposure: vectorbt's position at close t is ours over return t, so it is the share of the
  closes but the last one with a position.

Cost is 0: vectorbt's proportional fee cannot reproduce our cost model. It buys cash / (1 +
fee) of shares and books the fee at the order's close, whereas we hold the whole equity and
take cost × equity off the next return (and book the exit's cost on the bar after the exit),
so returns, drawdown, Sharpe and win rate differ by about cost × return per trade (~1e-4).

Rows where the two averages come within 1e-10 (relative) of each other on some bar are left
out: there the side of the crossover is a matter of rounding.
"""

from datetime import date

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from compute.grid import evaluate_grid, ma_pairs
from compute.specs import METRIC_NAMES
from kinds.prices import SampleProvider

FAST, SLOW = range(5, 51, 9), range(20, 201, 45)
RISK_FREE = 0.01
PERIODS_PER_YEAR = 252
TIE = 1e-10


def closes() -> np.ndarray:
    bars = SampleProvider().fetch("IBM", date(2004, 1, 1), date(2012, 12, 31), "1d")
    return bars["close"].to_numpy()


def vectorbt_metrics(close: np.ndarray, params: np.ndarray) -> tuple[dict, np.ndarray]:
    """(each metric as one value per row, which rows hold a near-tie of the averages)."""
    windows = params.astype(int)
    mean = {w: pd.Series(close).vbt.rolling_mean(w).to_numpy() for w in np.unique(windows)}
    fast = np.stack([mean[w] for w in windows[:, 0]], axis=1)
    slow = np.stack([mean[w] for w in windows[:, 1]], axis=1)
    with np.errstate(invalid="ignore"):
        tie = (np.abs(fast - slow) <= TIE * np.abs(slow)).any(axis=0)
        signal = fast > slow  # False while the slow average is not ready (NaN)
    before = np.vstack([np.zeros((1, signal.shape[1]), dtype=bool), signal[:-1]])
    # all cash in at the close where the signal turns on, everything out where it turns off
    size = np.where(signal & ~before, np.inf, np.where(before & ~signal, -np.inf, np.nan))
    pf = vbt.Portfolio.from_orders(
        close[:, None],  # one column, broadcast against the rows' orders
        size,
        direction="longonly",
        init_cash=1.0,
        fees=0.0,
        slippage=0.0,
        freq="1D",
    )
    returns = pf.returns().iloc[1:].vbt.returns(freq="1D", year_freq=f"{PERIODS_PER_YEAR}D")
    per_period = RISK_FREE / PERIODS_PER_YEAR
    closed = pf.trades.closed
    values = {
        "total_return": pf.total_return(),
        "cagr": returns.annualized(),
        "annual_volatility": returns.annualized_volatility(),
        "sharpe": returns.sharpe_ratio(risk_free=per_period),
        "sortino": returns.sortino_ratio(required_return=per_period),
        "max_drawdown": pf.max_drawdown(),
        "max_drawdown_duration": pf.drawdowns.duration.max(fill_value=0),
        "calmar": returns.calmar_ratio(),
        "win_rate": closed.win_rate(),
        "trades": closed.count(),
        "exposure": pf.position_mask().iloc[:-1].mean(),
    }
    return {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}, tie


@pytest.fixture(scope="module")
def both() -> tuple[dict, dict, np.ndarray]:
    close = closes()
    params = ma_pairs(FAST, SLOW)
    ours = evaluate_grid(close, "ma_crossover", params, cost=0.0, risk_free=RISK_FREE)
    theirs, tie = vectorbt_metrics(close, params)
    return ours.metrics[0], theirs, ~tie


def test_the_comparison_covers_the_grid(both):
    ours, theirs, compared = both
    assert set(theirs) == set(METRIC_NAMES)
    assert len(compared) == len(ma_pairs(FAST, SLOW)) and compared.sum() >= len(compared) - 2
    assert (ours["trades"][compared] > 0).all()  # every compared row trades: not vacuous


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_row_matches_vectorbt(both, name):
    ours, theirs, compared = both
    for i in np.flatnonzero(compared):
        want, got = theirs[name][i], ours[name][i]
        if np.isnan(want):
            assert np.isnan(got), (i, name)
        else:
            assert got == pytest.approx(want, abs=1e-9, rel=1e-9), (i, name, want, got)
