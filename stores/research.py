"""The research tables' statements (price_bar, strategy_run, pattern, the leaderboard's
snapshots): what the kinds write and what the API reads, and the `ResearchStore` that runs
the API's reads and the CLI's pruning.

The kinds' saves run these statements themselves, on the connection of the transaction
their `Database` gives them (`kinds.research`); the API reads through the store, so it holds
no SQL. Writes are upserts on each table's natural key (see migration 0005), so an attempt
that runs twice rewrites its rows. JSON goes in as text and is cast in SQL, as in `jobs.sql`.
No numpy here: the API imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from compute.specs import METRIC_NAMES
from jobs.db import Database, Queries, Record

INTEGER_METRICS = frozenset({"max_drawdown_duration", "trades"})

# Idempotent: re-running an ingestion rewrites the same bars in place, never adds twice.
UPSERT_BARS = """
INSERT INTO price_bar (symbol, interval, ts, open, high, low, close, volume, source, adjustment)
SELECT $1, $2, t.ts, t.open, t.high, t.low, t.close, t.volume, $3, $10
FROM unnest($4::timestamptz[], $5::float8[], $6::float8[], $7::float8[], $8::float8[],
            $9::float8[]) AS t(ts, open, high, low, close, volume)
ON CONFLICT (symbol, interval, ts) DO UPDATE
SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, source = excluded.source, adjustment = excluded.adjustment
WHERE excluded.source <> 'synthetic' OR price_bar.source = 'synthetic'
"""
"""Synthetic bars never replace market data (they may replace synthetic ones)."""

LOAD_BARS = """
SELECT ts, open, high, low, close, volume
FROM price_bar
WHERE symbol = $1 AND interval = $2
  AND ($3::timestamptz IS NULL OR ts >= $3)
  AND ($4::timestamptz IS NULL OR ts <= $4)
ORDER BY ts
"""

RUN_COLUMNS = (
    "job_id", "owner", "kind", "symbol", "interval", "family", "cost", "risk_free",
    "conventions", "published", "params", "sample", "selected", "start_ts", "end_ts", "bars",
    "benchmark", *METRIC_NAMES,
)  # fmt: skip
"""What a save writes of a run, in this order: COPY's columns and UPSERT_RUNS's arrays."""

LOCK_JOB_RUNS = (
    "SELECT pg_advisory_xact_lock(hashtext('conveyor.strategy_run'), hashtext($1::bigint::text))"
)
"""Taken first by a save, so two attempts of one job (a lost lease's and its retry's) store
one after the other, and the second sees what the first stored."""

JOB_HAS_RUNS = "SELECT EXISTS (SELECT 1 FROM strategy_run WHERE job_id = $1)"
"""Whether an earlier attempt stored runs: if not, the save COPYs its rows in (31,000 rows in
about 0.4 s against about 1.3 s for UPSERT_RUNS), as nothing can conflict."""

_METRIC_ARRAYS = ", ".join(
    f"${i}::{'int' if m in INTEGER_METRICS else 'float8'}[]"
    for i, m in enumerate(METRIC_NAMES, start=18)
)
UPSERT_RUNS = f"""
INSERT INTO strategy_run AS s ({", ".join(RUN_COLUMNS)})
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10,
       t.params::jsonb, t.sample, t.selected, t.start_ts, t.end_ts, t.bars, t.benchmark::jsonb,
       {", ".join("t." + m for m in METRIC_NAMES)}
FROM unnest($11::jsonb[], $12::text[], $13::bool[], $14::timestamptz[], $15::timestamptz[],
            $16::int[], $17::jsonb[], {_METRIC_ARRAYS})
     AS t(params, sample, selected, start_ts, end_ts, bars, benchmark, {", ".join(METRIC_NAMES)})
ON CONFLICT (job_id, symbol, family, params, sample) DO UPDATE
SET selected = excluded.selected, published = excluded.published,
    start_ts = excluded.start_ts, end_ts = excluded.end_ts,
    bars = excluded.bars, benchmark = excluded.benchmark,
    {", ".join(f"{m} = excluded.{m}" for m in METRIC_NAMES)}
RETURNING id
"""
"""A repeated attempt's save: the RUN_COLUMNS, the first ten as values ($1–$10), the rest as
one array per column; the rows it rewrites keep their ids."""

RUN_ID = """
SELECT id FROM strategy_run
WHERE job_id = $1 AND symbol = $2 AND family = $3 AND params = $4::jsonb AND sample = $5
"""

DELETE_STALE_RUNS = "DELETE FROM strategy_run WHERE job_id = $1 AND NOT (id = ANY($2::bigint[]))"
"""A save ends by removing its job's rows it did not write: an earlier attempt that saw other
bars (a day ingested between attempts) leaves no stale strategy behind, and the rows it did
rewrite keep their ids."""

DELETE_PATTERNS = """
DELETE FROM pattern WHERE symbol = $1 AND interval = $2 AND ts BETWEEN $3 AND $4
"""
"""The analysed window is replaced as a whole: a pattern that re-ingested bars no longer
show does not linger."""

UPSERT_PATTERNS = """
INSERT INTO pattern (symbol, interval, ts, pattern, direction, strength, job_id)
SELECT $1, $2, t.ts, t.pattern, t.direction, t.strength, $3
FROM unnest($4::timestamptz[], $5::text[], $6::text[], $7::float8[])
     AS t(ts, pattern, direction, strength)
ON CONFLICT (symbol, interval, ts, pattern) DO UPDATE
SET direction = excluded.direction, strength = excluded.strength, job_id = excluded.job_id
"""

LEADERBOARD_CANDIDATES = f"""
SELECT id, symbol, family, params, created_at, {", ".join(METRIC_NAMES)}
FROM strategy_run
WHERE selected AND published AND sample IN ('out', 'walk_forward')
  AND ($1::int IS NULL OR created_at >= now() - make_interval(days => $1))
"""


def own_leaderboard_sql(metric: str) -> str:
    """One owner's leaderboard, ranked on request: the newest selected out-of-sample or
    walk-forward run of each distinct strategy (symbol, family, parameters), highest
    `metric` first, undefined left out, ties by id: the rule `research.rank` applies to the
    shared snapshot. $1 owner, $2 window in days (NULL: all), $3 limit. `metric` must be one
    of METRIC_NAMES: it is spliced into the statement."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"cannot rank by {metric!r}")
    key = f"{metric}::float8"  # counts (trades) are integers: compared as float8 too
    return f"""
    SELECT id, symbol, family, params, {", ".join(METRIC_NAMES)},
           row_number() OVER (ORDER BY {key} DESC, id) AS rank, {key} AS score
    FROM (
        SELECT DISTINCT ON (symbol, family, params) *
        FROM strategy_run
        WHERE selected AND owner = $1 AND sample IN ('out', 'walk_forward')
          AND ($2::int IS NULL OR created_at >= now() - make_interval(days => $2))
        ORDER BY symbol, family, params, id DESC
    ) newest
    WHERE {key} IS NOT NULL AND {key} NOT IN ('NaN', 'Infinity', '-Infinity')
    ORDER BY {key} DESC, id
    LIMIT $3
    """


SAVE_SNAPSHOT = """
INSERT INTO leaderboard_snapshot (job_id, metric, window_days)
VALUES ($1, $2, $3)
ON CONFLICT (job_id) DO UPDATE SET metric = excluded.metric, window_days = excluded.window_days,
    created_at = now()
RETURNING id
"""

DELETE_ENTRIES = "DELETE FROM leaderboard_entry WHERE snapshot_id = $1"

INSERT_ENTRIES = """
INSERT INTO leaderboard_entry (snapshot_id, rank, strategy_id, symbol, family, params, score,
                               metrics)
SELECT $1, t.rank, t.strategy_id, t.symbol, t.family, t.params::jsonb, t.score,
       t.metrics::jsonb
FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::float8[],
            $8::text[]) AS t(rank, strategy_id, symbol, family, params, score, metrics)
"""
"""After DELETE_ENTRIES, in the same transaction: a rerun's entries replace the first run's.
(Not one statement with a deleting CTE: the insert would not see the delete and would collide
on (snapshot_id, rank).)"""

# -- reads for the API ------------------------------------------------------------------------

READ_BARS = """
SELECT ts, open, high, low, close, volume, source, adjustment
FROM price_bar
WHERE symbol = $1 AND interval = $2
  AND ($3::timestamptz IS NULL OR ts >= $3)
  AND ($4::timestamptz IS NULL OR ts <= $4)
  AND ($5::timestamptz IS NULL OR ts > $5)
ORDER BY ts
LIMIT $6
"""
"""$5 is the keyset cursor: the last bar of the previous page."""

HAS_BARS = "SELECT EXISTS (SELECT 1 FROM price_bar WHERE symbol = $1 AND interval = $2)"
"""Whether any bar of the series is stored: an empty page of none answers 404."""

STRATEGY_COLUMNS = f"""
id, job_id, owner, kind, symbol, interval, family, params, sample, selected, start_ts, end_ts,
bars, cost, risk_free, conventions, benchmark, published, created_at,
{", ".join(METRIC_NAMES)}
"""

BARS_STORED = """
SELECT count(*) AS bars, min(ts) AS first, max(ts) AS last
FROM price_bar WHERE symbol = $1 AND interval = $2
"""
"""What is stored of a symbol, for a message about a window with too few bars."""

GET_STRATEGY = f"""
SELECT {STRATEGY_COLUMNS} FROM strategy_run
WHERE id = $1 AND ($2::text IS NULL OR owner = $2 OR published)
"""


def list_strategies_sql(sort: str | None) -> str:
    """Newest first, or best first by the metric `sort` (NULLs last); keyset-paginated on
    (metric, id). $1–$7 filter (owner, symbols, families, kinds, samples, selected, job_id;
    the plural ones are arrays, any of which matches), $8 is the cursor's id, $9 the limit,
    and with a sort $10 the cursor's metric value.
    `sort` must be one of METRIC_NAMES: it is spliced into the statement."""
    filters = """
    WHERE ($1::text IS NULL OR owner = $1 OR published)
      AND ($2::text[] IS NULL OR symbol = ANY($2))
      AND ($3::text[] IS NULL OR family = ANY($3))
      AND ($4::text[] IS NULL OR kind = ANY($4))
      AND ($5::text[] IS NULL OR sample = ANY($5))
      AND ($6::bool IS NULL OR selected = $6)
      AND ($7::bigint IS NULL OR job_id = $7)
    """
    if sort is None:
        return f"""
        SELECT {STRATEGY_COLUMNS} FROM strategy_run {filters}
          AND ($8::bigint IS NULL OR id < $8)
        ORDER BY id DESC LIMIT $9
        """
    if sort not in METRIC_NAMES:
        raise ValueError(f"cannot sort by {sort!r}")
    # NULL metrics sort as -infinity, so the keyset comparison stays total.
    key = f"coalesce({sort}::float8, '-Infinity')"
    return f"""
    SELECT {STRATEGY_COLUMNS} FROM strategy_run {filters}
      AND ($8::bigint IS NULL OR ({key}, id) < ($10::float8, $8))
    ORDER BY {key} DESC, id DESC LIMIT $9
    """


LATEST_SNAPSHOT = """
SELECT id, job_id, metric, window_days, created_at FROM leaderboard_snapshot
ORDER BY created_at DESC, id DESC LIMIT 1
"""

PRUNE_SNAPSHOTS = f"""
DELETE FROM leaderboard_snapshot
WHERE id IN (
    SELECT id FROM leaderboard_snapshot
    WHERE created_at < now() - $1::interval AND id <> (SELECT id FROM ({LATEST_SNAPSHOT}) AS latest)
    ORDER BY id
    LIMIT $2
)
"""
"""Snapshots older than an age, a bounded batch at a time, never the latest one (what
GET /v1/leaderboard serves); their entries go with them (ON DELETE CASCADE)."""


async def prune_snapshots(db: Queries, older_than: timedelta, batch: int) -> int:
    """Delete the leaderboard snapshots older than `older_than` but the latest; how many."""
    total = 0
    while True:
        status = await db.execute(PRUNE_SNAPSHOTS, older_than, batch)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch:
            return total


GET_SNAPSHOT = """
SELECT id, job_id, metric, window_days, created_at FROM leaderboard_snapshot WHERE id = $1
"""

SNAPSHOT_ENTRIES = """
SELECT rank, strategy_id, symbol, family, params, score, metrics
FROM leaderboard_entry WHERE snapshot_id = $1 ORDER BY rank
"""

READ_PATTERNS = """
SELECT id, symbol, interval, ts, pattern, direction, strength
FROM pattern
WHERE ($1::text[] IS NULL OR symbol = ANY($1))
  AND ($2::timestamptz IS NULL OR ts >= $2)
  AND ($3::text[] IS NULL OR pattern = ANY($3))
  AND ($4::timestamptz IS NULL OR (ts, id) < ($4, $5::bigint))
ORDER BY ts DESC, id DESC
LIMIT $6
"""
"""Newest bar first; $1 and $3 are arrays (any matches), ($4, $5) the keyset cursor: the
previous page's last (ts, id)."""

STORED_SYMBOLS = """
WITH RECURSIVE series (symbol, interval) AS (
    (SELECT symbol, interval FROM price_bar ORDER BY symbol, interval LIMIT 1)
    UNION ALL
    SELECT next.symbol, next.interval
    FROM series s,
         LATERAL (SELECT symbol, interval FROM price_bar p
                  WHERE (p.symbol, p.interval) > (s.symbol, s.interval)
                  ORDER BY symbol, interval LIMIT 1) next
)
SELECT s.symbol, s.interval,
       (SELECT min(ts) FROM price_bar p WHERE p.symbol = s.symbol AND p.interval = s.interval)
           AS first,
       (SELECT max(ts) FROM price_bar p WHERE p.symbol = s.symbol AND p.interval = s.interval)
           AS last
FROM series s
ORDER BY s.symbol, s.interval
"""
"""Each stored series and its span, one primary-key descent per series and per end (a skip
scan), not a pass over every bar: a platform's price_bar holds millions."""

SAME_STRATEGY_RUNS = f"""
SELECT {STRATEGY_COLUMNS} FROM strategy_run
WHERE job_id = $1 AND symbol = $2 AND family = $3 AND params = $4::jsonb
ORDER BY CASE sample WHEN 'in' THEN 0 WHEN 'out' THEN 1 ELSE 2 END
"""
"""One strategy's runs in one job: an optimization's in- and out-of-sample pair, or one
walk-forward run. They share the first run's owner and publication."""

SERIES_ENDING = """
SELECT ts, close FROM (
    SELECT ts, close FROM price_bar
    WHERE symbol = $1 AND interval = $2 AND ts <= $3
    ORDER BY ts DESC LIMIT $4
) last ORDER BY ts
"""
"""The $4 bars up to $3: the series a run was scored on, which ends at its last bar."""

OPTIMIZATION_GRID = """
SELECT result -> 'symbols' -> $2 AS entry FROM job
WHERE id = $1 AND kind = 'strategy.optimize' AND state = 'succeeded'
"""
"""One symbol's entry of an optimization's stored result: its grid and its best set."""


class ResearchStore:
    """The API's reads of the research tables, and the pruning of old leaderboards, over one
    `Database` (`store.db`). Rows come back as the statements return them."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def bars(
        self,
        symbol: str,
        interval: str,
        start: datetime | None,
        end: datetime | None,
        after: datetime | None,
        limit: int,
    ) -> list[Record]:
        """READ_BARS: oldest first, in [start, end], after the cursor `after`."""
        return await self.db.fetch(READ_BARS, symbol, interval, start, end, after, limit)

    async def has_bars(self, symbol: str, interval: str) -> bool:
        return bool(await self.db.fetchval(HAS_BARS, symbol, interval))

    async def strategies(
        self,
        sort: str | None,
        *,
        owner: str | None,
        symbols: Sequence[str] | None,
        families: Sequence[str] | None,
        kinds: Sequence[str] | None,
        samples: Sequence[str] | None,
        selected: bool | None,
        job_id: int | None,
        cursor_id: int | None,
        cursor_value: float | None,
        limit: int,
    ) -> list[Record]:
        """`list_strategies_sql(sort)`: the filters (None: any), the keyset cursor (the
        previous page's last id, and with a sort its metric value) and the limit."""
        return await self.db.fetch(
            list_strategies_sql(sort),
            owner,
            symbols,
            families,
            kinds,
            samples,
            selected,
            job_id,
            cursor_id,
            limit,
            *([cursor_value] if sort else []),
        )

    async def strategy(self, strategy_id: int, owner: str | None) -> Record | None:
        """GET_STRATEGY: the run, when `owner` may see it (None: anyone's)."""
        return await self.db.fetchrow(GET_STRATEGY, strategy_id, owner)

    async def same_strategy_runs(
        self, job_id: int, symbol: str, family: str, params: Any
    ) -> list[Record]:
        return await self.db.fetch(SAME_STRATEGY_RUNS, job_id, symbol, family, params)

    async def series_ending(
        self, symbol: str, interval: str, end: datetime, count: int
    ) -> list[Record]:
        """SERIES_ENDING: the `count` bars up to `end`, oldest first."""
        return await self.db.fetch(SERIES_ENDING, symbol, interval, end, count)

    async def optimization_grid(self, job_id: int, symbol: str) -> Any:
        """OPTIMIZATION_GRID: the symbol's entry of the job's result (None without one)."""
        return await self.db.fetchval(OPTIMIZATION_GRID, job_id, symbol)

    async def stored_symbols(self) -> list[Record]:
        return await self.db.fetch(STORED_SYMBOLS)

    async def latest_snapshot(self) -> Record | None:
        return await self.db.fetchrow(LATEST_SNAPSHOT)

    async def snapshot(self, snapshot_id: int) -> Record | None:
        return await self.db.fetchrow(GET_SNAPSHOT, snapshot_id)

    async def snapshot_entries(self, snapshot_id: int) -> list[Record]:
        return await self.db.fetch(SNAPSHOT_ENTRIES, snapshot_id)

    async def own_leaderboard(
        self, metric: str, owner: str, window_days: int | None, limit: int
    ) -> list[Record]:
        """`own_leaderboard_sql(metric)` for `owner`."""
        return await self.db.fetch(own_leaderboard_sql(metric), owner, window_days, limit)

    async def patterns(
        self,
        symbols: Sequence[str] | None,
        since: datetime | None,
        patterns: Sequence[str] | None,
        before_ts: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[Record]:
        """READ_PATTERNS: newest bar first, before the cursor (before_ts, before_id)."""
        return await self.db.fetch(
            READ_PATTERNS, symbols, since, patterns, before_ts, before_id, limit
        )

    async def prune_snapshots(self, older_than: timedelta, batch: int) -> int:
        """`prune_snapshots`: how many snapshots were deleted."""
        return await prune_snapshots(self.db, older_than, batch)
