"""Price providers and validation, without a database."""

from datetime import date

import pandas as pd
import pytest

from kinds.prices import (
    BAR_COLUMNS,
    BadPrices,
    CsvProvider,
    SampleProvider,
    SyntheticProvider,
    validate,
)


def test_the_sample_provider_serves_real_daily_prices():
    bars = SampleProvider().fetch("AAPL", date(2010, 1, 1), date(2010, 12, 31), "1d")
    assert list(bars.columns) == [*BAR_COLUMNS, "adjustment"]
    assert len(bars) == 252  # NYSE trading days in 2010
    first = bars.iloc[0]
    assert first["ts"] == pd.Timestamp("2010-01-04", tz="UTC")
    # 214.01 as traded; the file's adjusted close (for every later split and dividend)
    assert first["close"] == pytest.approx(27.503268)
    assert validate("AAPL", bars) is not None
    with pytest.raises(BadPrices, match="has AAPL, FB, GOOG, IBM, MSFT"):
        SampleProvider().fetch("TSLA", None, None, "1d")
    with pytest.raises(BadPrices, match="interval"):
        SampleProvider().fetch("AAPL", None, None, "1m")


def test_synthetic_bars_are_deterministic_per_seed_and_symbol_and_valid():
    a = SyntheticProvider(seed=7).fetch("XYZ", date(2020, 1, 1), date(2020, 12, 31), "1d")
    again = SyntheticProvider(seed=7).fetch("XYZ", date(2020, 1, 1), date(2020, 12, 31), "1d")
    other = SyntheticProvider(seed=8).fetch("XYZ", date(2020, 1, 1), date(2020, 12, 31), "1d")
    pd.testing.assert_frame_equal(a, again)
    assert not a["close"].equals(other["close"])
    assert len(a) == 262  # business days in 2020
    validate("XYZ", a)


def test_a_csv_folder_is_read_per_symbol(tmp_path):
    (tmp_path / "ACME.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-02,10,11,9.5,10.5,1000\n"
        "2024-01-03,10.5,10.8,10.1,10.2,800\n"
    )
    bars = CsvProvider(tmp_path).fetch("ACME", None, None, "1d")
    assert bars["close"].tolist() == [10.5, 10.2]
    (tmp_path / "BAD.csv").write_text("Date,Open,Close\n2024-01-02,1,2\n")
    with pytest.raises(BadPrices, match="lacks the columns high, low, volume"):
        CsvProvider(tmp_path).fetch("BAD", None, None, "1d")


def frame(**overrides):
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"], utc=True),
            "open": [10.0, 10.5, 10.2],
            "high": [11.0, 10.8, 10.4],
            "low": [9.5, 10.1, 9.9],
            "close": [10.5, 10.2, 10.0],
            "volume": [1000.0, 800.0, 900.0],
        }
    )
    for column, values in overrides.items():
        df[column] = values
    return df


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"ts": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-04"], utc=True)}, "duplicate"),
        (
            {"ts": pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-04"], utc=True)},
            "increasing",
        ),
        ({"close": [10.5, -1.0, 10.0]}, "positive"),
        ({"close": [10.5, float("nan"), 10.0]}, "missing prices"),
        ({"high": [9.0, 10.8, 10.4]}, "high is below"),
        ({"volume": [1000.0, -5.0, 900.0]}, "volume"),
    ],
)
def test_bad_bars_are_refused_saying_what_is_wrong(overrides, says):
    with pytest.raises(BadPrices, match=says):
        validate("ACME", frame(**overrides))


def test_a_nan_tolerance_drops_the_incomplete_bars_it_allows():
    kept = validate("ACME", frame(close=[10.5, float("nan"), 10.0]), nan_tolerance=0.5)
    assert len(kept) == 2
    with pytest.raises(BadPrices, match="missing columns volume"):
        validate("ACME", frame().drop(columns=["volume"]))


def test_a_parquet_file_in_the_folder_is_read_like_a_csv(tmp_path):
    frame = pd.DataFrame(
        {
            "Date": ["2024-01-02", "2024-01-03"],
            "Open": [10.0, 11.0],
            "High": [11.5, 12.0],
            "Low": [9.5, 10.5],
            "Close": [11.0, 11.5],
            "Volume": [1000, 1200],
        }
    )
    frame.to_parquet(tmp_path / "ACME.parquet")
    bars = validate("ACME", CsvProvider(tmp_path).fetch("ACME", None, None, "1d"))
    assert bars["close"].tolist() == [11.0, 11.5]
    assert str(bars["ts"].iloc[0]) == "2024-01-02 00:00:00+00:00"
    with pytest.raises(BadPrices, match=r"no NOPE\.csv or NOPE\.parquet"):
        CsvProvider(tmp_path).fetch("NOPE", None, None, "1d")


@pytest.mark.parametrize(
    ("symbol", "day", "raw_move"),
    [("AAPL", "2000-06-21", -0.45), ("AAPL", "2005-02-28", -0.50), ("MSFT", "2003-02-18", -0.48)],
)
def test_the_sample_is_split_adjusted_so_a_split_is_no_crash(symbol, day, raw_move):
    """As traded, AAPL went 101.25 → 55.63 on 2000-06-21 (a 2:1 split); every backtest read
    that as a −45 % day. Adjusted, the day moves as the company did."""
    from kinds.prices import _sample_table

    bars = SampleProvider().fetch(symbol, None, None)
    assert set(bars["adjustment"]) == {"split_dividend"}
    i = int(bars.index[bars["ts"] == pd.Timestamp(day, tz="UTC")][0])
    move = bars["close"][i] / bars["close"][i - 1] - 1
    assert abs(move) < 0.15, move
    raw = _sample_table()
    raw = raw[raw["Ticker"] == symbol].reset_index(drop=True)
    raw_i = int(raw.index[raw["Date"] == day][0])
    assert raw["Close"][raw_i] / raw["Close"][raw_i - 1] - 1 < raw_move + 0.05  # the cliff
    assert bars["close"][i] == pytest.approx(raw["Adj Close"][raw_i], rel=1e-12)
    ratio = bars["open"][i] / raw["Open"][raw_i]
    assert ratio == pytest.approx(bars["close"][i] / raw["Close"][raw_i], rel=1e-12)
    assert validate(symbol, bars) is not None  # still a valid bar: high ≥ open, close, low


def test_a_csv_with_an_adjusted_close_or_a_factor_is_adjusted_by_it(tmp_path):
    rows = {
        "date": ["2024-01-02", "2024-01-03"],
        "open": [100.0, 50.0],
        "high": [102.0, 51.0],
        "low": [99.0, 49.0],
        "close": [101.0, 50.5],
        "volume": [10.0, 20.0],
    }
    pd.DataFrame({**rows, "adj_close": [50.5, 50.5]}).to_csv(tmp_path / "ABC.csv", index=False)
    pd.DataFrame({**rows, "factor": [0.5, 1.0]}).to_csv(tmp_path / "DEF.csv", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "GHI.csv", index=False)
    provider = CsvProvider(tmp_path)
    for symbol in ("ABC", "DEF"):
        bars = provider.fetch(symbol, None, None)
        assert bars["close"].tolist() == [50.5, 50.5] and bars["open"].tolist() == [50.0, 50.0]
        assert set(bars["adjustment"]) == {"split_dividend"}
        assert bars["volume"].tolist() == [10.0, 20.0]  # as traded
    assert "adjustment" not in provider.fetch("GHI", None, None).columns  # as traded: none
