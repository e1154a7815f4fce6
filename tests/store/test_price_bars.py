"""price_bar on real Postgres: re-storing the same bars rewrites them, never duplicates."""

from datetime import date

from kinds.prices import SampleProvider, store_bars, validate


async def test_storing_bars_twice_keeps_one_row_per_bar_and_the_latest_values(conn):
    bars = validate("IBM", SampleProvider().fetch("IBM", date(2012, 1, 1), date(2012, 3, 31), "1d"))
    assert await store_bars(conn, "IBM", "1d", "sample", bars) == len(bars)
    changed = bars.copy()
    changed.loc[0, "close"] = changed.loc[0, "close"] + 1
    assert await store_bars(conn, "IBM", "1d", "sample", changed) == len(bars)
    rows = await conn.fetch("SELECT ts, close, source FROM price_bar ORDER BY ts")
    assert len(rows) == len(bars)
    assert rows[0]["close"] == changed.loc[0, "close"]
    assert {r["source"] for r in rows} == {"sample"}
