"""Candlestick patterns and volatility regimes of a series of bars.

Candlesticks are TA-Lib's definitions (the reference most charting tools follow), which
look at the bars before a pattern too (body sizes are judged against recent ones). TA-Lib
answers ±100 per bar (±80 for an engulfing whose bodies merely touch); `strength` is that
magnitude over 100, and `direction` its sign.

A volatility regime compares 20-day realised volatility (annualised) with its own median over
the year before: `volatility_high` above 1.5×, `volatility_low` below 0.75×, otherwise
`volatility_normal`. One row is stored where the regime changes, with the ratio as
`strength`. Both use only bars up to the one they are reported on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

CANDLESTICKS = {
    "engulfing": talib.CDLENGULFING,
    "hammer": talib.CDLHAMMER,
    "shooting_star": talib.CDLSHOOTINGSTAR,
    "doji": talib.CDLDOJI,
    "morning_star": talib.CDLMORNINGSTAR,
    "evening_star": talib.CDLEVENINGSTAR,
}
REGIMES = ("volatility_low", "volatility_normal", "volatility_high")
PATTERNS = (*CANDLESTICKS, *REGIMES)
VOL_WINDOW = 20
BASELINE_WINDOW = 252
HIGH, LOW = 1.5, 0.75
COLUMNS = ["ts", "pattern", "direction", "strength"]


def candlesticks(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per (bar, pattern) detected."""
    o, h, lo, c = (bars[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close"))
    found = []
    for name, detect in CANDLESTICKS.items():
        value = detect(o, h, lo, c)
        hits = np.flatnonzero(value)
        if not len(hits):
            continue
        v = value[hits].astype(np.float64)
        direction = np.where(v > 0, "bullish", "bearish")
        if name == "doji":  # TA-Lib reports a doji as +100: it signals indecision, not a side
            direction = np.full(len(hits), "neutral")
        found.append(
            pd.DataFrame(
                {
                    "ts": bars["ts"].to_numpy()[hits],
                    "pattern": name,
                    "direction": direction,
                    "strength": np.abs(v) / 100.0,
                }
            )
        )
    return _frame(found)


def volatility_regimes(bars: pd.DataFrame) -> pd.DataFrame:
    """A row where the volatility regime changes (the first known regime included)."""
    close = bars["close"].astype(float).reset_index(drop=True)
    vol = np.log(close).diff().rolling(VOL_WINDOW).std() * np.sqrt(252)
    baseline = vol.rolling(BASELINE_WINDOW, min_periods=BASELINE_WINDOW // 2).median()
    ratio = (vol / baseline).to_numpy()
    known = ~np.isnan(ratio)
    regime = np.where(ratio > HIGH, 2, np.where(ratio < LOW, 0, 1))
    previous = np.concatenate([[-1], regime[:-1]])
    previous_known = np.concatenate([[False], known[:-1]])
    change = known & ((regime != previous) | ~previous_known)
    at = np.flatnonzero(change)
    return _frame(
        [
            pd.DataFrame(
                {
                    "ts": bars["ts"].to_numpy()[at],
                    "pattern": [REGIMES[i] for i in regime[at]],
                    "direction": "neutral",
                    "strength": ratio[at],
                }
            )
        ]
    )


def analyze(bars: pd.DataFrame) -> pd.DataFrame:
    """Candlesticks and regime changes, ordered by time then pattern."""
    frame = _frame([candlesticks(bars), volatility_regimes(bars)])
    return frame.sort_values(["ts", "pattern"], kind="stable").reset_index(drop=True)


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    return pd.concat(parts, ignore_index=True)[COLUMNS]
