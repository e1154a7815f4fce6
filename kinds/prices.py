"""Price bars: where they come from (providers), what makes them acceptable (validation),
and how they are stored (`price_bar`, idempotently).

Every provider answers `fetch(symbol, start, end, interval) -> DataFrame` with the columns
BAR_COLUMNS, indexed by nothing in particular, one row per bar:

- `sample`: real daily prices shipped in the `bokeh-sampledata` package: AAPL, GOOG, IBM,
  MSFT (2000-03-01 to 2013-03-01) and FB (2012-05-18 to 2013-03-01), from the Quandl WIKI
  prices, which Quandl declared public domain; split- and dividend-adjusted with the file's
  `Adj Close` (open, high and low scaled by the same factor; volume as traded). The default:
  real data, no network.
- `csv`: a CSV or Parquet file, or a folder of `<SYMBOL>.csv` / `<SYMBOL>.parquet`, with columns
  `ts` (or `date`), `open`, `high`, `low`, `close`, `volume` (and `symbol` for a single file
  holding several); with an `adj_close` (or `adj close`) column, or a `factor` column, the
  prices are adjusted by it, as the sample's are.
- `synthetic`: geometric Brownian motion from a seed, for load tests and demos — not market
  data, and labelled `synthetic` wherever it is stored.

Bad data is refused with a message naming the symbol and the problem; nothing is stored
silently repaired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from jobs.db import Queries
from stores.research import UPSERT_BARS

BAR_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
ADJUSTMENTS = ("none", "split_dividend")
"""How a provider's bars are adjusted, in an `adjustment` column beside BAR_COLUMNS (absent:
`none`), stored with each bar. Backtests want `split_dividend`: a split as traded is a
−50 % day no strategy lived through."""


def adjusted(df: pd.DataFrame, factor: pd.Series) -> pd.DataFrame:
    """Open, high, low and close scaled by `factor` (adjusted close / close), marked
    `split_dividend`; volume stays as traded."""
    out = df.copy()
    for column in ("open", "high", "low", "close"):
        out[column] = df[column].astype(float) * factor.to_numpy(float)
    out["adjustment"] = "split_dividend"
    return out


INTERVALS = ("1d",)
"""Daily bars only, for now: every provider here is daily."""


class BadPrices(ValueError):
    """The bars cannot be stored; the message says which symbol and what is wrong."""


class Provider(Protocol):
    @property
    def name(self) -> str:
        """Stored with every bar as its `source`."""

    def fetch(
        self, symbol: str, start: date | None, end: date | None, interval: str
    ) -> pd.DataFrame:
        """Bars of one symbol in [start, end] (either open), as BAR_COLUMNS."""


def _window(df: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    if start is not None:
        df = df[df["ts"] >= pd.Timestamp(start, tz="UTC")]
    if end is not None:
        df = df[df["ts"] <= pd.Timestamp(end, tz="UTC")]
    return df.reset_index(drop=True)


def _daily_only(interval: str) -> None:
    if interval not in INTERVALS:
        raise BadPrices(f"interval {interval!r} is not available; use one of {INTERVALS}")


@cache
def _sample_table() -> pd.DataFrame:
    """The packaged file, parsed once per process (an ingestion asks for several symbols)."""
    from bokeh_sampledata.stocks import package_path

    return pd.read_csv(package_path("stocks.csv.gz"))


@dataclass(frozen=True)
class SampleProvider:
    name: str = "sample"

    @staticmethod
    def symbols() -> list[str]:
        return ["AAPL", "FB", "GOOG", "IBM", "MSFT"]

    def fetch(
        self, symbol: str, start: date | None, end: date | None, interval: str = "1d"
    ) -> pd.DataFrame:
        _daily_only(interval)
        if symbol not in self.symbols():
            raise BadPrices(
                f"the sample data has no {symbol!r}; it has {', '.join(self.symbols())}"
            )
        raw = _sample_table()
        rows = raw[raw["Ticker"] == symbol]
        df = pd.DataFrame(
            {
                "ts": pd.to_datetime(rows["Date"], utc=True),
                "open": rows["Open"].astype(float),
                "high": rows["High"].astype(float),
                "low": rows["Low"].astype(float),
                "close": rows["Close"].astype(float),
                "volume": rows["Volume"].astype(float),
            }
        )
        df = adjusted(df, rows["Adj Close"].astype(float) / rows["Close"].astype(float))
        return _window(df.sort_values("ts"), start, end)


@dataclass(frozen=True)
class CsvProvider:
    path: Path
    name: str = "csv"

    def fetch(
        self, symbol: str, start: date | None, end: date | None, interval: str = "1d"
    ) -> pd.DataFrame:
        _daily_only(interval)
        file = self._file(symbol)
        raw = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        if "symbol" in raw.columns:
            raw = raw[raw["symbol"].astype(str).str.upper() == symbol]
        if "ts" not in raw.columns and "date" in raw.columns:
            raw = raw.rename(columns={"date": "ts"})
        missing = [c for c in BAR_COLUMNS if c not in raw.columns]
        if missing:
            raise BadPrices(f"{symbol}: {file.name} lacks the columns {', '.join(missing)}")
        df = raw[BAR_COLUMNS].copy()
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        adj = next((c for c in ("adj_close", "adj close") if c in raw.columns), None)
        if adj is not None:
            df = adjusted(df, raw[adj].astype(float) / raw["close"].astype(float))
        elif "factor" in raw.columns:
            df = adjusted(df, raw["factor"].astype(float))
        return _window(df, start, end)

    def _file(self, symbol: str) -> Path:
        """A single file (CSV, or Parquet by its suffix), or `<SYMBOL>.csv` or
        `<SYMBOL>.parquet` in a folder."""
        if not self.path.is_dir():
            if not self.path.is_file():
                raise BadPrices(f"no price file at {self.path}")
            return self.path
        for suffix in (".csv", ".parquet"):
            if (file := self.path / f"{symbol}{suffix}").is_file():
                return file
        raise BadPrices(f"no {symbol}.csv or {symbol}.parquet in {self.path}")


@dataclass(frozen=True)
class SyntheticProvider:
    """Seeded geometric Brownian motion on business days. Not market data."""

    seed: int = 0
    start_price: float = 100.0
    drift: float = 0.07
    """Annual drift."""
    volatility: float = 0.2
    """Annual volatility."""
    name: str = "synthetic"

    def fetch(
        self, symbol: str, start: date | None, end: date | None, interval: str = "1d"
    ) -> pd.DataFrame:
        _daily_only(interval)
        days = pd.bdate_range(start or date(2015, 1, 1), end or date(2024, 12, 31), tz="UTC")
        # One stream per (seed, symbol): the same request always gives the same bars.
        rng = np.random.default_rng([self.seed, *symbol.encode()])
        dt = 1 / 252
        shocks = rng.normal(
            (self.drift - self.volatility**2 / 2) * dt, self.volatility * np.sqrt(dt), len(days)
        )
        close = self.start_price * np.exp(np.cumsum(shocks))
        previous = np.concatenate([[self.start_price], close[:-1]])
        spread = np.abs(rng.normal(0, self.volatility * np.sqrt(dt) / 2, len(days)))
        high = np.maximum(previous, close) * (1 + spread)
        low = np.minimum(previous, close) * (1 - spread)
        volume = rng.integers(100_000, 5_000_000, len(days)).astype(float)
        return pd.DataFrame(
            {
                "ts": days,
                "open": previous,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
            }
        )


@dataclass(frozen=True)
class YahooProvider:
    """Yahoo Finance through yfinance: the optional `yahoo` extra and a network connection.
    For production use; no test depends on it."""

    name: str = "yahoo"

    def fetch(
        self, symbol: str, start: date | None, end: date | None, interval: str = "1d"
    ) -> pd.DataFrame:
        _daily_only(interval)
        try:
            import yfinance  # optional, and slow to import
        except ImportError:
            raise BadPrices(
                "the yahoo provider needs yfinance: pip install 'conveyor[yahoo]'"
            ) from None
        # yfinance's end is exclusive; ours is the last day wanted
        raw = yfinance.Ticker(symbol).history(
            start=start,
            end=None if end is None else end + timedelta(days=1),
            interval=interval,
            auto_adjust=True,  # splits and dividends folded into open, high, low, close
        )
        if raw.empty:
            raise BadPrices(f"Yahoo Finance returned no bars for {symbol!r}")
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(raw.index.date, utc=True),
                "open": raw["Open"].to_numpy(float),
                "high": raw["High"].to_numpy(float),
                "low": raw["Low"].to_numpy(float),
                "close": raw["Close"].to_numpy(float),
                "volume": raw["Volume"].to_numpy(float),
                "adjustment": "split_dividend",
            }
        )


def validate(symbol: str, df: pd.DataFrame, nan_tolerance: float = 0.0) -> pd.DataFrame:
    """The bars as they will be stored, or BadPrices saying what is wrong with them."""
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise BadPrices(f"{symbol}: missing columns {', '.join(missing)}")
    if df.empty:
        raise BadPrices(f"{symbol}: no bars in the requested range")
    ts = pd.to_datetime(df["ts"], utc=True)
    if ts.duplicated().any():
        first = ts[ts.duplicated()].iloc[0]
        raise BadPrices(f"{symbol}: duplicate timestamp {first.isoformat()}")
    if not ts.is_monotonic_increasing:
        raise BadPrices(f"{symbol}: timestamps are not in increasing order")
    prices = df[["open", "high", "low", "close"]].astype(float)
    nan_share = float(prices.isna().any(axis=1).mean())
    if nan_share > nan_tolerance:
        raise BadPrices(
            f"{symbol}: {nan_share:.1%} of bars have missing prices (tolerance {nan_tolerance:.1%})"
        )
    kept = df.loc[~prices.isna().any(axis=1)].copy()
    kept_prices = kept[["open", "high", "low", "close"]].astype(float)
    if (kept_prices <= 0).any().any():
        raise BadPrices(f"{symbol}: prices must be positive")
    if (kept_prices["high"] < kept_prices[["open", "close", "low"]].max(axis=1)).any():
        raise BadPrices(f"{symbol}: a bar's high is below its open, close or low")
    if (kept["volume"].astype(float) < 0).any():
        raise BadPrices(f"{symbol}: volume cannot be negative")
    kept["ts"] = pd.to_datetime(kept["ts"], utc=True)
    return kept.reset_index(drop=True)


async def store_bars(
    db: Queries,
    symbol: str,
    interval: str,
    source: str,
    bars: pd.DataFrame,
) -> int:
    """Upsert validated bars (`stores.research.UPSERT_BARS`); returns how many rows were
    written."""
    status: str = await db.execute(
        UPSERT_BARS,
        symbol,
        interval,
        source,
        list(bars["ts"].dt.to_pydatetime()),
        bars["open"].astype(float).tolist(),
        bars["high"].astype(float).tolist(),
        bars["low"].astype(float).tolist(),
        bars["close"].astype(float).tolist(),
        bars["volume"].astype(float).tolist(),
        adjustment_of(bars),
    )
    return int(status.rsplit(" ", 1)[-1])


def adjustment_of(bars: pd.DataFrame) -> str:
    """How these bars are adjusted (one value for the whole frame); `none` unless said."""
    if "adjustment" not in bars.columns or bars.empty:
        return "none"
    values: set[str] = {str(v) for v in bars["adjustment"]}
    if len(values) != 1 or not values <= set(ADJUSTMENTS):
        raise BadPrices(f"bars must carry one adjustment of {ADJUSTMENTS}, not {sorted(values)}")
    return values.pop()
