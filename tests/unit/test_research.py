"""The research computations without a database: walk-forward, sampling, ranking, heatmaps,
candlestick patterns and volatility regimes, and the payload models' messages."""

import itertools
from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from compute import patterns, research
from compute.backtest import FAMILIES, metrics, strategy_returns
from compute.grid import evaluate_locally
from compute.specs import PricesIngest, StrategyOptimize
from kinds.prices import SampleProvider, SyntheticProvider


@pytest.fixture(scope="module")
def ibm() -> pd.DataFrame:
    return SampleProvider().fetch("IBM", date(2004, 1, 1), date(2012, 12, 31), "1d")


def test_walk_forward_trades_each_fold_with_what_the_past_chose(ibm):
    close = ibm["close"].to_numpy()
    rng = np.random.default_rng(1)
    candidates = research.sample_params("ma_crossover", 30, rng)
    task = research.training_task(close, "ma_crossover", candidates, 3, 0.0005, 0.0)
    assert task is not None
    (trained,) = evaluate_locally([task])
    wf = research.walk_forward(close, "ma_crossover", candidates, 3, trained, "sharpe", 0.0005, 0)
    n = len(close) - 1
    assert wf.folds[0][0] == n // 2 and wf.folds[-1][1] == n
    assert len(wf.returns) == n - n // 2
    # each fold's parameters are the best in-sample up to that fold's start
    for (a, b), chosen in zip(wf.folds, wf.chosen, strict=True):
        scores = []
        for row in candidates:
            params = research.params_of("ma_crossover", row)
            r, pos = strategy_returns(close, FAMILIES["ma_crossover"](close, **params), 0.0005)
            scores.append(metrics(r[:a], pos[:a]).sharpe)
        assert chosen["params"] == research.params_of(
            "ma_crossover", candidates[int(np.nanargmax(scores))]
        )
        assert (chosen["from"], chosen["to"]) == (a, b)
    hold_r, hold_p = strategy_returns(close, np.ones(len(close)), 0.0005)
    first = wf.folds[0][0]
    assert wf.benchmark.sharpe == pytest.approx(metrics(hold_r[first:], hold_p[first:]).sharpe)
    (retrained,) = evaluate_locally([task])
    again = research.walk_forward(
        close, "ma_crossover", candidates, 3, retrained, "sharpe", 0.0005, 0
    )
    assert np.array_equal(again.returns, wf.returns)  # deterministic


def test_sampling_is_seeded_distinct_and_usable():
    a = research.sample_params("rsi_reversion", 50, np.random.default_rng(3))
    b = research.sample_params("rsi_reversion", 50, np.random.default_rng(3))
    assert np.array_equal(a, b) and len(a) == 50
    assert len({tuple(r) for r in a}) == 50
    assert (a[:, 1] < a[:, 2]).all()  # low below high


def test_rank_keeps_the_newest_run_of_each_strategy_and_orders_by_score():
    def run(i, symbol, fast, sharpe):
        return {"id": i, "symbol": symbol, "family": "ma_crossover",
                "params": {"fast": fast, "slow": 50}, "sharpe": sharpe}  # fmt: skip

    ranked = research.rank(
        [
            run(1, "IBM", 5, 2.0),
            run(2, "IBM", 5, 0.5),  # the same strategy, newer: its score counts
            run(3, "MSFT", 5, 1.0),
            run(4, "AAPL", 5, None),  # undefined: not ranked
            run(5, "GOOG", 5, 1.0),  # ties go to the older id
        ],
        "sharpe",
        limit=10,
    )
    assert [(e["rank"], e["id"], e["score"]) for e in ranked] == [
        (1, 3, 1.0),
        (2, 5, 1.0),
        (3, 2, 0.5),
    ]
    assert len(research.rank([run(1, "IBM", 5, 1.0), run(2, "IBM", 6, 2.0)], "sharpe", 1)) == 1


def test_heatmap_places_each_score_on_its_axes():
    values = {"fast": [5.0, 10.0], "slow": [10.0, 20.0]}
    params = np.array([[5, 10], [5, 20], [10, 20]], dtype=float)
    cube = research.heatmap("ma_crossover", values, params, np.array([1.0, np.nan, 3.0]))
    axes = [{"name": "fast", "values": [5.0, 10.0]}, {"name": "slow", "values": [10.0, 20.0]}]
    assert cube == {"axes": axes, "values": [[1.0, None], [None, 3.0]]}


def bars(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    ts = pd.bdate_range("2020-01-01", periods=len(rows), tz="UTC")
    o, h, lo, c = zip(*rows, strict=True)
    return pd.DataFrame({"ts": ts, "open": o, "high": h, "low": lo, "close": c})


def test_a_bullish_engulfing_after_a_decline_is_found():
    falling = [(100 - i, 100.5 - i, 98.5 - i, 99 - i) for i in range(15)]  # small red bodies
    last = falling[-1][3]
    rows = [
        *falling,
        (last, last + 0.2, last - 1.2, last - 1.0),
        (last - 1.2, last + 1.5, last - 1.3, last + 1.2),
    ]
    found = patterns.candlesticks(bars(rows))
    hit = found[found["pattern"] == "engulfing"]
    assert len(hit) == 1 and hit.iloc[0]["direction"] == "bullish"
    assert hit.iloc[0]["ts"] == bars(rows)["ts"].iloc[-1]


def test_volatility_regimes_change_where_the_volatility_does():
    calm = SyntheticProvider(seed=1, volatility=0.1).fetch(
        "X", date(2015, 1, 1), date(2016, 12, 31)
    )
    wild = SyntheticProvider(seed=2, volatility=0.6).fetch("X", date(2017, 1, 1), date(2017, 6, 30))
    wild[["open", "high", "low", "close"]] *= calm["close"].iloc[-1] / wild["open"].iloc[0]
    series = pd.concat([calm, wild], ignore_index=True)
    regimes = patterns.volatility_regimes(series)
    high = regimes[regimes["pattern"] == "volatility_high"]
    assert len(high) >= 1
    assert high.iloc[0]["ts"] >= wild["ts"].iloc[0]  # no look-ahead: only after the change
    assert (high["strength"] > patterns.HIGH).all()


def test_payloads_say_what_is_wrong():
    with pytest.raises(ValidationError, match="the grid lacks slow"):
        StrategyOptimize(symbols=["IBM"], grid={"fast": {"start": 5, "stop": 10}})
    with pytest.raises(ValidationError, match="fast takes whole numbers"):
        StrategyOptimize(
            symbols=["IBM"],
            grid={"fast": {"start": 5, "stop": 6, "step": 0.5}, "slow": {"start": 20, "stop": 30}},
        )
    with pytest.raises(ValidationError, match="at most 20000"):
        StrategyOptimize(
            symbols=["IBM"],
            grid={"fast": {"start": 2, "stop": 300}, "slow": {"start": 3, "stop": 1000}},
        )
    with pytest.raises(ValidationError, match=r"end: .* is before start"):
        PricesIngest(symbols=["IBM"], start="2012-01-01", end="2011-01-01")
    with pytest.raises(ValidationError, match="String should match pattern"):
        PricesIngest(symbols=["ibm; drop table"])


@pytest.mark.parametrize(("returns", "folds"), [(29, 10), (100, 3), (31, 7), (5, 3), (3, 2)])
def test_walk_forward_windows_are_contiguous_and_never_shorter_than_two(returns, folds):
    bounds = research.fold_bounds(returns, folds)
    assert bounds, (returns, folds)
    assert bounds[0][0] == returns // 2 and bounds[-1][1] == returns
    assert all(b - a >= 2 for a, b in bounds) and len(bounds) <= folds
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(bounds))


def test_a_series_too_short_for_one_window_has_none():
    assert research.fold_bounds(2, 3) == []


def test_booleans_and_dates_take_json_types_only():
    with pytest.raises(ValidationError, match="true or false, not 0"):
        StrategyOptimize(symbols=["IBM"], publish=0)
    with pytest.raises(ValidationError, match="a date as YYYY-MM-DD, not 0"):
        PricesIngest(symbols=["IBM"], end=0)
    assert StrategyOptimize(symbols=["IBM"], publish=True).publish is True


def test_the_api_names_every_pattern_the_analysis_stores():
    from typing import get_args

    from compute.specs import PatternName

    assert set(get_args(PatternName)) == set(patterns.PATTERNS)


def test_research_cursors_carry_every_microsecond_exactly():
    """A cursor is the last row's timestamp in microseconds; through a float about 1.4 % of
    sub-second stamps came back a microsecond off, and the next page repeated or lost rows."""
    import random
    from datetime import UTC, datetime, timedelta

    from api.research import _from_micros, _micros

    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(20_000):
        ts = start + timedelta(microseconds=rng.randrange(10**14))
        assert _from_micros(str(_micros(ts))) == ts
    before = datetime(1962, 1, 2, 15, 30, 0, 123457, tzinfo=UTC)  # before the epoch too
    assert _from_micros(str(_micros(before))) == before


def test_stored_parameter_json_is_what_params_of_gives_for_every_family():
    """The save formats each parameter set's JSON itself (json.dumps was a third of storing a
    large grid): it must read back as `research.params_of`'s object, ints as ints."""
    import json

    import numpy as np

    from compute.research import params_of
    from compute.specs import FAMILY_PARAMETERS
    from kinds.research import _params_json

    rows = {
        "ma_crossover": [[5.0, 20.0], [12.0, 200.0]],
        "rsi_reversion": [[14.0, 30.0, 70.0]],
        "donchian_breakout": [[55.0]],
        "bollinger_reversion": [[20.0, 2.5], [10.0, 0.1 + 0.2]],
    }
    assert set(rows) == set(FAMILY_PARAMETERS)
    for family, values in rows.items():
        texts = _params_json(family, np.array(values, dtype=np.float64))
        for text, row in zip(texts, values, strict=True):
            decoded = json.loads(text)
            expected = params_of(family, row)
            assert decoded == expected and list(decoded) == list(expected)
            assert [type(v) for v in decoded.values()] == [type(v) for v in expected.values()]
