"""The backtest engine against an independent reference (empyrical-reloaded, a test
dependency only) on real prices, and the no-look-ahead and cost rules by hand."""

from datetime import date

import empyrical
import numpy as np
import pandas as pd
import pytest
import talib

from compute.backtest import (
    FAMILIES,
    backtest,
    ma_crossover,
    metrics,
    moving_average,
    rsi,
    simple_returns,
    strategy_returns,
)
from kinds.prices import SampleProvider

TOL = 1e-9


@pytest.fixture(scope="module")
def close() -> np.ndarray:
    bars = SampleProvider().fetch("MSFT", date(2005, 1, 1), date(2012, 12, 31), "1d")
    return bars["close"].to_numpy()


@pytest.mark.parametrize("risk_free", [0.0, 0.02])
def test_every_metric_matches_empyrical_on_real_prices(close, risk_free):
    signal = ma_crossover(close, 20, 100)
    r, position = strategy_returns(close, signal, cost=0.0005)
    m = metrics(r, position, risk_free=risk_free)
    s = pd.Series(r)
    rf = risk_free / 252
    assert m.total_return == pytest.approx(empyrical.cum_returns_final(s), abs=TOL)
    assert m.cagr == pytest.approx(empyrical.annual_return(s), abs=TOL)
    assert m.annual_volatility == pytest.approx(empyrical.annual_volatility(s), abs=TOL)
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(s, risk_free=rf), abs=TOL)
    assert m.sortino == pytest.approx(empyrical.sortino_ratio(s, required_return=rf), abs=TOL)
    assert m.max_drawdown == pytest.approx(empyrical.max_drawdown(s), abs=TOL)
    assert m.calmar == pytest.approx(empyrical.calmar_ratio(s), abs=TOL)


def test_a_signal_trades_from_the_next_bar_and_pays_for_turnover():
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    signal = np.array([1.0, 0.0, 0.0, 1.0, 1.0])  # long at the first close, out at the second
    r, position = strategy_returns(close, signal, cost=0.01)
    assert position.tolist() == [1.0, 0.0, 0.0, 1.0]
    # bar 1 earns +10 % minus 1 % to enter; bar 2 pays 1 % to leave and earns nothing
    assert r.tolist() == pytest.approx([0.10 - 0.01, -0.01, 0.0, 0.10 - 0.01])
    m, equity = backtest(close, signal, cost=0.01)
    assert equity[-1] == pytest.approx(1.09 * 0.99 * 1.09)
    assert (m.trades, m.exposure) == (1, 0.5)  # the second trade is still open
    assert m.win_rate == 1.0


def test_drawdown_duration_and_win_rate_by_hand():
    r = np.array([0.1, -0.2, 0.05, 0.05, 0.2, -0.1])
    position = np.array([1.0, 1.0, 0.0, -1.0, -1.0, 0.0])
    m = metrics(r, position)
    assert m.max_drawdown == pytest.approx(-0.2)
    assert m.max_drawdown_duration == 3  # three periods below the 1.1 peak
    assert m.trades == 2 and m.win_rate == pytest.approx(0.5)  # -12 % then +26 %


def test_a_return_to_the_peak_is_at_the_peak_whatever_the_rounding():
    """Closes 10, 19, 10, 19: the equity comes back to 1.9, computed as 1.8999999999999997.
    That is the peak, not one more period below it."""
    m = metrics(simple_returns(np.array([10.0, 19.0, 10.0, 19.0])))
    assert m.max_drawdown_duration == 1
    assert m.max_drawdown == pytest.approx(10 / 19 - 1)


@pytest.mark.parametrize("period", [2, 5, 14, 30])
def test_rsi_is_wilders_as_ta_lib_computes_it(close, period):
    """TA-Lib, an independent implementation: the same NaN head, values to 1e-9."""
    ours, reference = rsi(close, period), talib.RSI(close, timeperiod=period)
    assert np.array_equal(np.isnan(ours), np.isnan(reference))
    ready = ~np.isnan(reference)
    assert ready.sum() == len(close) - period
    np.testing.assert_allclose(ours[ready], reference[ready], rtol=1e-9, atol=1e-9)


def test_moving_averages_come_from_one_cumulative_sum(close):
    expected = pd.Series(close).rolling(50).mean().to_numpy()
    got = moving_average(close, 50)
    assert np.isnan(got[:49]).all()
    np.testing.assert_allclose(got[49:], expected[49:], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("ma_crossover", {"fast": 10, "slow": 50}),
        ("rsi_reversion", {"period": 14, "low": 30, "high": 70}),
        ("donchian_breakout", {"window": 20}),
        ("bollinger_reversion", {"window": 20, "k": 2.0}),
    ],
)
def test_every_family_gives_positions_from_past_prices_only(close, family, params):
    signal = FAMILIES[family](close, **params)
    assert set(np.unique(signal)) <= {0.0, 1.0}
    # No look-ahead: the signal up to t does not change when later prices do.
    cut = len(close) // 2
    shocked = close.copy()
    shocked[cut + 1 :] *= 1.5
    np.testing.assert_array_equal(FAMILIES[family](shocked, **params)[: cut + 1], signal[: cut + 1])
    m, _ = backtest(close, signal, cost=0.0005)
    assert np.isfinite(m.total_return) and 0 <= m.exposure <= 1
