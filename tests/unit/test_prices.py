"""Price providers and validation, without a database."""

from datetime import date

import pandas as pd
import pytest

from compute.prices import (
    BAR_COLUMNS,
    BadPrices,
    CsvProvider,
    SampleProvider,
    SyntheticProvider,
    validate,
)


def test_the_sample_provider_serves_real_daily_prices():
    bars = SampleProvider().fetch("AAPL", date(2010, 1, 1), date(2010, 12, 31), "1d")
    assert list(bars.columns) == BAR_COLUMNS
    assert len(bars) == 252  # NYSE trading days in 2010
    first = bars.iloc[0]
    assert first["ts"] == pd.Timestamp("2010-01-04", tz="UTC")
    assert first["close"] == pytest.approx(214.01)  # unadjusted, as the source published it
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
