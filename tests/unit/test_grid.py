"""The vectorised grid agrees with the single-backtest engine, row for row, to 1e-9, for
every family, on real and synthetic prices, over whole series and over segments."""

from datetime import date

import numpy as np
import pytest

from compute.backtest import FAMILIES, metrics, strategy_returns
from compute.grid import PARAMETERS, Path, evaluate_grid, ma_pairs, product, segment_metrics
from kinds.prices import SampleProvider, SyntheticProvider

GRIDS = {
    "ma_crossover": {"fast": range(5, 51, 9), "slow": range(20, 201, 45)},
    "rsi_reversion": {"period": [7, 14], "low": [20.0, 30.0], "high": [60.0, 70.0]},
    "donchian_breakout": {"window": [10, 20, 55]},
    "bollinger_reversion": {"window": [10, 20], "k": [1.0, 2.0, 2.5]},
}


def closes(source: str) -> np.ndarray:
    if source == "sample":
        bars = SampleProvider().fetch("IBM", date(2004, 1, 1), date(2012, 12, 31), "1d")
    else:
        bars = SyntheticProvider(seed=3).fetch("X", date(2010, 1, 1), date(2019, 12, 31), "1d")
    return bars["close"].to_numpy()


def assert_same(expected: dict, got: dict, i: int, label: object) -> None:
    for name, want in expected.items():
        value = got[name][i]
        if np.isnan(want):
            assert np.isnan(value), (label, name)
        else:
            assert value == pytest.approx(want, abs=1e-9, rel=1e-9), (label, name, want, value)


@pytest.mark.parametrize("source", ["sample", "synthetic"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_row_matches_the_engine(source, family):
    close = closes(source)
    params = product(family, GRIDS[family])
    n = len(close) - 1
    segments = [(0, n), (0, n * 2 // 3), (n * 2 // 3, n)]
    grid = evaluate_grid(close, family, params, segments, cost=0.0005, risk_free=0.01, chunk=7)
    assert len(grid.metrics) == 3 and len(grid.metrics[0]["sharpe"]) == len(params)
    traded_somewhere = 0
    for i, values in enumerate(grid.param_dicts()):
        signal = FAMILIES[family](close, **values)
        r, position = strategy_returns(close, signal, 0.0005)
        for (a, b), got in zip(segments, grid.metrics, strict=True):
            single = metrics(r[a:b], position[a:b], risk_free=0.01)
            assert_same(single.as_dict(), got, i, (family, values, a, b))
        traded_somewhere += grid.metrics[0]["trades"][i] > 0
    assert traded_somewhere > 0  # the grids above do trade: the comparison is not vacuous


def test_pairs_keep_fast_below_slow():
    pairs = ma_pairs(range(5, 51), range(20, 201))
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len(pairs) == 7830  # the benchmark grid: fast 5–50, slow 20–200
    assert len(product("ma_crossover", {"fast": range(5, 51), "slow": range(20, 201)})) == 7830


def test_a_grid_names_its_parameters_and_refuses_the_wrong_shape():
    grid = evaluate_grid(closes("synthetic"), "bollinger_reversion", np.array([[20, 2.0]]))
    assert grid.param_dicts() == [{"window": 20, "k": 2.0}]
    assert PARAMETERS["rsi_reversion"] == ("period", "low", "high")
    with pytest.raises(ValueError, match="takes window, k"):
        evaluate_grid(closes("synthetic"), "bollinger_reversion", np.array([[20]]))
    with pytest.raises(ValueError, match="needs values for slow"):
        product("ma_crossover", {"fast": [5]})


def test_trades_that_net_exactly_nothing_are_not_wins_in_either_path():
    """Prices on a coarse tick grid: many trades return exactly 0, which rounding would turn
    into ±1e-16 differently in the engine and the grid."""
    rng = np.random.default_rng(11)
    close = 50 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], 1500)).clip(-40, None)
    for family in sorted(FAMILIES):
        params = product(family, GRIDS[family])
        grid = evaluate_grid(close, family, params, cost=0.0)
        for i, values in enumerate(grid.param_dicts()):
            r, position = strategy_returns(close, FAMILIES[family](close, **values), 0.0)
            assert_same(metrics(r, position).as_dict(), grid.metrics[0], i, (family, values))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_row_gives_the_same_bits_in_any_chunk(family):
    """Spark evaluates slices of a grid in chunks of its own: a row's figures must not depend
    on the rows evaluated beside it."""
    close = closes("sample")
    params = product(family, GRIDS[family])
    n = len(close) - 1
    segments = [(0, n // 2), (n // 2, n)]
    whole = evaluate_grid(close, family, params, segments, cost=0.0005, chunk=len(params))
    tail = len(params) // 3
    for chunk in (1, 5):
        part = evaluate_grid(close, family, params[tail:], segments, cost=0.0005, chunk=chunk)
        for full, piece in zip(whole.metrics, part.metrics, strict=True):
            for name, values in full.items():
                assert np.array_equal(values[tail:], piece[name], equal_nan=True), (chunk, name)


@pytest.mark.parametrize("source", ["sample", "synthetic", "ticks"])
def test_positions_of_any_shape_match_the_engine(source):
    """Random long/flat positions, not a strategy's: runs from one bar to the whole series,
    rows always or never long, segments as short as one return."""
    rng = np.random.default_rng(5)
    if source == "ticks":
        close = 50 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], 800)).clip(-40, None)
    else:
        close = closes(source)[:800]
    r = np.diff(close) / close[:-1]
    n = len(r)
    flips = [0.0, 0.002, 0.02, 0.2, 0.7]
    rows = [rng.random(n) < p for p in flips for _ in range(4)]
    position = np.array([np.logical_xor.accumulate(row) for row in rows] + [np.ones(n, bool)])
    segments = [(0, n), (0, 1), (n - 2, n), (n // 3, n // 3 + 2), (n // 3, n)]
    for cost in (0.0, 0.001):
        for a, b in segments:
            first = position[:, a] if a == 0 else position[:, a] != position[:, a - 1]
            got = segment_metrics(position[:, a:b], first, Path(r[a:b], 0.02), cost)
            for i, held in enumerate(position):
                signal = np.append(held, False).astype(np.float64)
                returns, pos = strategy_returns(close, signal, cost)
                want = metrics(returns[a:b], pos[a:b], risk_free=0.02).as_dict()
                assert_same(want, got, i, (source, cost, a, b))


def test_windows_as_long_as_the_series_or_longer_never_signal_in_either_path():
    close = closes("sample")[:30]
    params = np.array([[1.0], [2.0], [29.0], [30.0], [31.0], [100.0]])
    grid = evaluate_grid(close, "donchian_breakout", params)
    for i, values in enumerate(grid.param_dicts()):
        r, position = strategy_returns(close, FAMILIES["donchian_breakout"](close, **values))
        assert_same(metrics(r, position).as_dict(), grid.metrics[0], i, values)
    assert grid.metrics[0]["exposure"][0] > 0 and (grid.metrics[0]["exposure"][2:] == 0).all()


def test_an_empty_grid_has_no_rows_and_an_unknown_family_is_refused():
    grid = evaluate_grid(closes("synthetic"), "ma_crossover", np.empty((0, 2)), [(0, 10), (10, 20)])
    assert [len(m["sharpe"]) for m in grid.metrics] == [0, 0]
    assert len(evaluate_grid(closes("synthetic"), "donchian_breakout", []).metrics[0]["cagr"]) == 0
    with pytest.raises(ValueError, match="unknown strategy family"):
        evaluate_grid(closes("synthetic"), "martingale", np.array([[1.0]]))


def engine_and_grid(close: np.ndarray, held: list[bool], cost: float) -> tuple[dict, dict]:
    r = np.diff(close) / close[:-1]
    position = np.array([held])
    got = segment_metrics(position, position[:, 0], Path(r, 0.0), cost)
    returns, pos = strategy_returns(close, np.append(held, False).astype(np.float64), cost)
    return metrics(returns, pos).as_dict(), got


def test_a_run_whose_price_never_falls_shows_no_drawdown():
    """(1/g)·g is not 1 in floating point: a long run's equity is taken as ratios of the
    series' growth, or a flat price would show a fall of 1e-16 and a Calmar of 1e15."""
    want, got = engine_and_grid(np.array([4988.0, 4987.0, 4987.0]), [False, True], 0.0)
    assert want["max_drawdown"] == got["max_drawdown"][0] == 0.0
    assert np.isnan(want["calmar"]) and np.isnan(got["calmar"][0])


def test_a_row_whose_returns_are_mostly_its_cost_keeps_its_volatility():
    """Flat but for its last bar, whose return is about the cost: its variance must not be
    lost in Σr² − n·mean² over the whole segment's prefix sums."""
    close = closes("synthetic")[:2500].copy()
    close[-1] = close[-2] * (1 + 0.0005 + 1e-5)
    held = [False] * (len(close) - 2) + [True]
    want, got = engine_and_grid(close, held, 0.0005)
    assert_same(want, got, 0, "cost-sized return")


def test_constant_returns_have_no_volatility_in_either_path():
    """Flipping every bar on a constant price pays the cost every bar: constant returns,
    whose computed standard deviation is a residue, not a volatility."""
    want, got = engine_and_grid(np.full(4, 100.0), [True, False, True], 0.05)
    assert want["annual_volatility"] == got["annual_volatility"][0] == 0.0
    assert np.isnan(want["sharpe"]) and np.isnan(got["sharpe"][0])


def test_a_wiped_out_equity_has_a_cagr_of_minus_one_in_either_path():
    """A 96 % fall with a 5 % cost takes equity below zero: CAGR is −100 %, not an error."""
    want, got = engine_and_grid(
        np.array([100.0, 100.0, 4.0, 4.0, 4.0, 4.0]), [False] + [True] * 4, 0.05
    )
    assert want["cagr"] == got["cagr"][0] == -1.0
    assert want["total_return"] == pytest.approx(got["total_return"][0], abs=1e-12)


def _tick_series_with_flats(seed: int) -> np.ndarray:
    """Cents on a random walk with long stretches of one identical close, as illiquid
    tick-rounded prices have, after enough history that the cumulative sums are large."""
    rng = np.random.default_rng(seed)
    parts, price = [], 101.37
    for _ in range(12):
        walk = price + np.cumsum(rng.choice([-0.01, 0.0, 0.01], 60))
        price = round(float(walk[-1]), 2)
        parts += [np.round(walk, 2), np.full(int(rng.integers(25, 40)), price)]
    return np.concatenate(parts)


def _exact_means(close: np.ndarray, window: int) -> list:
    from fractions import Fraction

    cents = [Fraction(round(c * 100), 100) for c in close]
    return [None] * (window - 1) + [
        sum(cents[t - window + 1 : t + 1]) / window for t in range(window - 1, len(cents))
    ]


def _exact_bollinger(close: np.ndarray, window: int, k: float) -> np.ndarray:
    """The rule in exact rational arithmetic: long when close < mean − k·std (ddof 1), out at
    close ≥ mean. `mean − close > k·std` is compared squared, so no square root is taken."""
    from fractions import Fraction

    cents = [Fraction(round(c * 100), 100) for c in close]
    kk = Fraction(k) ** 2
    signal, holding = np.zeros(len(close)), 0.0
    for t in range(window - 1, len(cents)):
        w = cents[t - window + 1 : t + 1]
        mean = sum(w) / window
        var = sum((x - mean) ** 2 for x in w) / max(window - 1, 1)
        gap = mean - cents[t]
        if gap > 0 and gap * gap > kk * var:
            holding = 1.0
        elif cents[t] >= mean:
            holding = 0.0
        signal[t] = holding
    return signal


def _exact_crossover(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    f, s = _exact_means(close, fast), _exact_means(close, slow)
    return np.array([1.0 if s[t] is not None and f[t] > s[t] else 0.0 for t in range(len(close))])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_signals_on_flat_and_tied_tick_prices_match_exact_arithmetic_in_both_paths(seed):
    """On a flat stretch the band has zero width and close equals the mean: Bollinger may not
    enter (with k = 3 it cannot by its own rule), and equal averages are not a crossover.
    Checked against the rule in exact rational arithmetic, for the engine and the grid."""
    close = _tick_series_with_flats(seed)
    cases = [
        ("bollinger_reversion", {"window": w, "k": k}, _exact_bollinger(close, w, k))
        for w, k in ((10, 3.0), (20, 2.0), (5, 0.5))
    ] + [
        ("ma_crossover", {"fast": f, "slow": s}, _exact_crossover(close, f, s))
        for f, s in ((5, 10), (10, 30))
    ]
    for family, params, exact in cases:
        engine = FAMILIES[family](close, **params)
        assert np.array_equal(engine, exact), (family, params, np.flatnonzero(engine != exact))
        row = np.array([list(params.values())], dtype=float)
        grid = evaluate_grid(close, family, row)
        r, position = strategy_returns(close, exact)
        assert_same(metrics(r, position).as_dict(), grid.metrics[0], 0, (family, params))
