"""The five research kinds, each as load → compute → save (see `worker.registry.Kind`):

| kind | load (worker, DB) | compute (pool child, pure) | save (worker, DB) |
|---|---|---|---|
| prices.ingest | — | fetch and validate each symbol | upsert `price_bar` |
| strategy.optimize | bars | the grid, in- and out-of-sample | upsert `strategy_run` |
| strategy.discover | bars | walk-forward per family | upsert `strategy_run` |
| patterns.analyze | bars | candlesticks, regimes | upsert `pattern` |
| leaderboard.refresh | selected runs | rank | a `leaderboard_snapshot` |

Computations report progress and stop at the next chunk once cancelled. Saves are upserts
keyed by the job (or the bar), so a repeated attempt rewrites its rows: nothing is stored
twice.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from compute import patterns as candles
from compute import research
from compute.backtest import METRIC_CONVENTIONS, Metrics
from compute.grid import Evaluator, evaluate_locally
from compute.specs import (
    FAMILY_PARAMETERS,
    METRIC_NAMES,
    WHOLE_PARAMETERS,
    LeaderboardRefresh,
    PatternsAnalyze,
    PricesIngest,
    StrategyDiscover,
    StrategyOptimize,
)
from jobs.db import Connection, Database, JsonText
from jobs.handler import JSON, Cancel, JobContext, Permanent
from jobs.model import SYSTEM_OWNER, Claimed
from kinds import prices
from stores import research as results  # the research tables' statements

MIN_BARS = 30
"""Fewer bars than this cannot be split into samples worth scoring."""
PATTERN_WARMUP = timedelta(days=450)
"""Bars loaded before `since`, so the indicators behind patterns and regimes are warm."""
HEATMAP_LIMIT = 50_000
"""Grid points per job above which the result leaves the heatmap out (the runs are stored)."""


class Reporter:
    """Progress over a known amount of work, sent only when the percentage or the step moves;
    raises Cancel between chunks once the job is cancelled. With `steps` (what each part of
    the work is, and its size: a symbol's grid, say) the message names the step under way."""

    def __init__(
        self,
        ctx: JobContext,
        total: int,
        message: str = "",
        steps: list[tuple[str, int]] | None = None,
    ) -> None:
        self.ctx, self.done, self.last = ctx, 0, -1
        self.message = message
        self.steps = [(label, size) for label, size in steps or [] if size > 0]
        self.ends = list(itertools.accumulate(size for _, size in self.steps))
        self.total = max(self.ends[-1] if self.ends else total, 1)
        self.step = -1

    def advance(self, amount: int, message: str | None = None) -> None:
        self.done += amount
        self.check(message)

    def computed(self, message: str = "storing the results") -> None:
        """The computation is over; what is left is the worker storing its output."""
        self.ctx.progress(99, message)

    def reach(self, done: int) -> None:
        """Progress callback of a grid: `done` units so far."""
        self.done = done
        self.check()

    def _step_message(self) -> tuple[int, str | None]:
        if not self.steps:
            return -1, None
        index = min(bisect.bisect_right(self.ends, self.done), len(self.steps) - 1)
        label, size = self.steps[index]
        within = self.done - (self.ends[index] - size)
        return index, f"{label}: {within:,} of {size:,} parameter sets"

    def check(self, message: str | None = None) -> None:
        if self.ctx.cancelled():
            raise Cancel(f"stopped after {self.done} of {self.total} steps")
        percent = min(99, self.done * 100 // self.total)
        step, described = self._step_message()
        if percent != self.last or message or step != self.step:
            self.last, self.step = percent, step
            self.ctx.progress(percent, message or described or self.message)


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


def _day_end(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time.max, tzinfo=UTC)


async def _bars(
    db: Database,
    symbol: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
    minimum: int = MIN_BARS,
) -> pd.DataFrame:
    rows = await db.fetch(results.LOAD_BARS, symbol, interval, start, end)
    if len(rows) < minimum:
        stored = await db.fetchrow(results.BARS_STORED, symbol, interval)
        if stored is None or not stored["bars"]:
            raise Permanent(
                f"{symbol}: no {interval} bars are stored: run prices.ingest for {symbol} first"
            )
        window = f"{start.date() if start else 'the start'} to {end.date() if end else 'now'}"
        raise Permanent(
            f"{symbol}: {len(rows)} {interval} bars from {window}, {minimum} needed; its"
            f" {stored['bars']} stored bars run from {stored['first']:%Y-%m-%d} to"
            f" {stored['last']:%Y-%m-%d}: widen the window, or ingest the dates you need"
        )
    return pd.DataFrame([dict(r) for r in rows])


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _column(values: np.ndarray, integer: bool = False) -> list[Any]:
    """A metric for every row, as stored: None where undefined, counts as integers."""
    finite = np.isfinite(values)
    out: list[Any] = (values.astype(np.int64) if integer else values).tolist()
    if not finite.all():
        out = [v if ok else None for v, ok in zip(out, finite.tolist(), strict=True)]
    return out


@dataclass
class _Runs:
    """Runs of one symbol and family, column by column (the row-wise form cost a dict and a
    JSON text per row: about 1 s of Python for an optimization's 31,000 runs)."""

    params: list[JsonText]
    sample: list[str]
    selected: list[bool]
    start_ts: list[datetime]
    end_ts: list[datetime]
    bars: list[int]
    benchmark: list[dict[str, Any] | None]
    metrics: dict[str, list[Any]]
    """Each of METRIC_NAMES, one value per run."""

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> _Runs:
        return cls(
            params=[JsonText(_json(r["params"])) for r in rows],
            sample=[r["sample"] for r in rows],
            selected=[r["selected"] for r in rows],
            start_ts=[r["start_ts"] for r in rows],
            end_ts=[r["end_ts"] for r in rows],
            bars=[r["bars"] for r in rows],
            benchmark=[r.get("benchmark") for r in rows],
            metrics={
                m: [
                    None if v is None else int(v) if m in results.INTEGER_METRICS else v
                    for v in (r["metrics"][m] for r in rows)
                ]
                for m in METRIC_NAMES
            },
        )

    def columns(self) -> list[list[Any]]:
        """The per-run columns, in results.RUN_COLUMNS order (after the first ten)."""
        return [
            self.params,
            self.sample,
            self.selected,
            self.start_ts,
            self.end_ts,
            self.bars,
            self.benchmark,
            *(self.metrics[m] for m in METRIC_NAMES),
        ]


async def _fresh_save(conn: Connection, job: Claimed) -> bool:
    """Serialise this job's saves; True when no earlier attempt stored runs."""
    await conn.execute(results.LOCK_JOB_RUNS, job.id)
    return not await conn.fetchval(results.JOB_HAS_RUNS, job.id)


async def _save_runs(
    conn: Connection,
    job: Claimed,
    fresh: bool,
    symbol: str,
    interval: str,
    family: str,
    cost: float,
    risk_free: float,
    runs: _Runs,
    published: bool,
) -> list[int]:
    """Store one symbol's runs of one family: COPY when the job has none stored yet (nothing
    can conflict), else the upsert. Returns the ids the upsert wrote (none after a COPY, which
    leaves nothing stale to delete)."""
    conventions = JsonText(_json({**METRIC_CONVENTIONS, "risk_free": risk_free, "cost": cost}))
    fixed = (job.id, job.owner, job.kind, symbol, interval, family, cost, risk_free)
    per_run = runs.columns()
    if fresh:
        count = len(runs.sample)
        constant = [itertools.repeat(v, count) for v in (*fixed, conventions, published)]
        await conn.copy_records_to_table(
            "strategy_run",
            columns=results.RUN_COLUMNS,
            records=zip(*constant, *per_run, strict=True),
        )
        return []
    saved = await conn.fetch(results.UPSERT_RUNS, *fixed, conventions, published, *per_run)
    return [r["id"] for r in saved]


def _published(job: Claimed, payload: StrategyOptimize | StrategyDiscover) -> bool:
    """The platform's own research (its schedules, its scripts) is shared; anyone else's only
    when an admin asked for it (the API refuses `publish` from users)."""
    return payload.publish or job.owner == SYSTEM_OWNER


def _metrics_json(m: Metrics) -> dict[str, float | None]:
    return {k: research.finite(float(v)) for k, v in m.as_dict().items()}


# -- prices.ingest ------------------------------------------------------------------------------


def _provider(payload: PricesIngest) -> prices.Provider:
    if payload.provider == "sample":
        return prices.SampleProvider()
    if payload.provider == "synthetic":
        return prices.SyntheticProvider(seed=payload.seed)
    if payload.provider == "csv":
        folder = os.environ.get("CONVEYOR_CSV_DIR")
        if not folder:
            raise Permanent(
                "the csv provider reads <SYMBOL>.csv files from the folder in the worker's"
                " CONVEYOR_CSV_DIR, which is not set"
            )
        return prices.CsvProvider(Path(folder))
    return prices.YahooProvider()


def ingest(ctx: JobContext, payload: PricesIngest) -> dict[str, Any]:
    """Each symbol's validated bars, or why it failed; one symbol's failure spares the rest."""
    provider = _provider(payload)
    report = Reporter(ctx, len(payload.symbols))
    bars: dict[str, pd.DataFrame] = {}
    failed: dict[str, str] = {}
    for symbol in payload.symbols:
        report.check(f"fetching {symbol}")
        try:
            raw = provider.fetch(symbol, payload.start, payload.end, payload.interval)
            bars[symbol] = prices.validate(symbol, raw)
        except prices.BadPrices as exc:
            failed[symbol] = str(exc)
        except Exception as exc:  # a provider's own error (network, parsing): report it
            failed[symbol] = f"{symbol}: {type(exc).__name__}: {exc}"
        report.advance(1)
    report.computed()
    return {"source": provider.name, "bars": bars, "failed": failed}


async def save_ingest(
    db: Database, job: Claimed, payload: PricesIngest, output: dict[str, Any]
) -> JSON:
    stored: dict[str, JSON] = {}
    async with db.transaction() as conn:
        # in one order, so concurrent ingestions of overlapping symbols cannot deadlock
        for symbol, bars in sorted(output["bars"].items()):
            count = await prices.store_bars(conn, symbol, payload.interval, output["source"], bars)
            stored[symbol] = {
                "bars": count,
                "first": bars["ts"].iloc[0].isoformat(),
                "last": bars["ts"].iloc[-1].isoformat(),
            }
    failed: dict[str, JSON] = dict(output["failed"])
    if not stored:
        raise Permanent("no symbol could be ingested: " + "; ".join(output["failed"].values()))
    return {"provider": output["source"], "stored": stored, "failed": failed}


# -- strategy.optimize -------------------------------------------------------------------------


async def load_closes(
    db: Database, job: Claimed, payload: StrategyOptimize | StrategyDiscover
) -> dict[str, pd.DataFrame]:
    start, end = _day_start(payload.start), _day_end(payload.end)
    return {s: await _bars(db, s, payload.interval, start, end) for s in payload.symbols}


@dataclass(frozen=True)
class _Optimized:
    ts: np.ndarray
    optimized: research.Optimized


def _evaluator() -> Evaluator:
    """Spark when the worker is configured for it, else this process."""
    from compute.spark import SparkSettings

    if SparkSettings().enabled:
        from compute.spark import evaluate_on_spark

        return evaluate_on_spark
    return evaluate_locally


def optimize(
    ctx: JobContext, payload: StrategyOptimize, bars: dict[str, pd.DataFrame]
) -> dict[str, _Optimized]:
    params = np.array(payload.parameter_sets(), dtype=np.float64)
    steps = [
        (f"{symbol} ({i} of {len(bars)}), {payload.family} grid", len(params))
        for i, symbol in enumerate(bars, start=1)
    ]
    report = Reporter(ctx, len(params) * len(bars), steps=steps)
    tasks, cuts = [], []
    for frame in bars.values():
        task, cut = research.optimize_task(
            frame["close"].to_numpy(dtype=np.float64),
            payload.family,
            params,
            payload.split,
            payload.cost,
            payload.risk_free,
        )
        tasks.append(task)
        cuts.append(cut)
    report.check()
    evaluated = _evaluator()(tasks, report.reach)
    report.computed(f"storing {2 * len(params) * len(bars):,} runs")
    return {
        symbol: _Optimized(frame["ts"].to_numpy(), research.choose(result, cut, payload.metric))
        for (symbol, frame), result, cut in zip(bars.items(), evaluated, cuts, strict=True)
    }


def _segment_span(ts: np.ndarray, first: int, last: int) -> tuple[datetime, datetime]:
    """Return t runs from bar t to bar t+1: a segment [first, last) spans these bars."""
    return pd.Timestamp(ts[first]).to_pydatetime(), pd.Timestamp(ts[last]).to_pydatetime()


def _params_json(family: str, rows: np.ndarray) -> list[JsonText]:
    """Each parameter set as its JSON object, `research.params_of`'s, formatted directly:
    json.dumps cost 8 µs a set, a third of storing a large grid."""
    names = FAMILY_PARAMETERS[family]
    whole = [n in WHOLE_PARAMETERS for n in names]
    out = []
    for row in rows.tolist():
        fields = (
            f'"{n}":{int(v) if w else v!r}' for n, v, w in zip(names, row, whole, strict=True)
        )
        out.append(JsonText("{" + ",".join(fields) + "}"))
    return out


def _optimized_runs(item: _Optimized) -> _Runs:
    """Every grid point's in-sample run, then every one's out-of-sample run."""
    opt = item.optimized
    result = opt.result
    n = len(item.ts) - 1
    count = len(result.params)
    spans = [_segment_span(item.ts, 0, opt.split), _segment_span(item.ts, opt.split, n)]
    selected = [i == opt.best for i in range(count)]
    params = _params_json(result.family, result.params)  # once for both samples
    return _Runs(
        params=params + params,
        sample=["in"] * count + ["out"] * count,
        selected=selected + selected,
        start_ts=[spans[0][0]] * count + [spans[1][0]] * count,
        end_ts=[spans[0][1]] * count + [spans[1][1]] * count,
        bars=[opt.split] * count + [n - opt.split] * count,
        benchmark=[None] * (2 * count),
        metrics={
            m: _column(
                np.concatenate([result.metrics[0][m], result.metrics[1][m]]),
                m in results.INTEGER_METRICS,
            )
            for m in METRIC_NAMES
        },
    )


async def save_optimize(
    db: Database,
    job: Claimed,
    payload: StrategyOptimize,
    output: dict[str, _Optimized],
) -> JSON:
    values = payload.parameter_values()
    grid_points = sum(len(o.optimized.result.params) for o in output.values())
    summary: dict[str, JSON] = {}
    written: list[int] = []
    async with db.transaction() as conn:
        fresh = await _fresh_save(conn, job)
        for symbol, item in sorted(output.items()):
            opt = item.optimized
            result = opt.result
            written += await _save_runs(
                conn,
                job,
                fresh,
                symbol,
                payload.interval,
                payload.family,
                payload.cost,
                payload.risk_free,
                _optimized_runs(item),
                _published(job, payload),
            )
            entry: dict[str, JSON] = {"runs": 2 * len(result.params), "best": None}
            if opt.best is not None:
                best_params = research.params_of(payload.family, result.params[opt.best])
                entry["best"] = {
                    "params": best_params,
                    "in_sample": research.row_metrics(result, 0, opt.best),
                    "out_of_sample": research.row_metrics(result, 1, opt.best),
                    "strategy_id": await conn.fetchval(
                        results.RUN_ID, job.id, symbol, payload.family, best_params, "out"
                    ),
                }
            if grid_points <= HEATMAP_LIMIT:
                entry["grid"] = {
                    "metric": payload.metric,
                    "sample": "in",
                    **research.heatmap(
                        payload.family, values, result.params, result.metrics[0][payload.metric]
                    ),
                }
            summary[symbol] = entry
        if not fresh:
            await conn.execute(results.DELETE_STALE_RUNS, job.id, written)
    return {
        "family": payload.family,
        "metric": payload.metric,
        "parameters": list(FAMILY_PARAMETERS[payload.family]),
        "symbols": summary,
        "conventions": {**METRIC_CONVENTIONS, "risk_free": payload.risk_free},
    }


# -- strategy.discover -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Discovered:
    ts: np.ndarray
    found: list[research.WalkForward]
    evaluated: int


def discover(
    ctx: JobContext, payload: StrategyDiscover, bars: dict[str, pd.DataFrame]
) -> dict[str, _Discovered]:
    per_family = max(1, payload.budget // len(payload.families))
    planned = []  # (symbol, family, close, candidates, training task)
    for symbol, frame in bars.items():
        close = frame["close"].to_numpy(dtype=np.float64)
        for family in payload.families:
            # one stream per (seed, symbol, family): adding a symbol changes no other's draws
            rng = np.random.default_rng([payload.seed, *symbol.encode(), *family.encode()])
            candidates = research.sample_params(family, per_family, rng)
            task = research.training_task(
                close, family, candidates, payload.folds, payload.cost, payload.risk_free
            )
            planned.append((symbol, family, close, candidates, task))
    place = {symbol: i for i, symbol in enumerate(bars, start=1)}
    steps = [
        (f"{symbol} ({place[symbol]} of {len(bars)}), {family} walk-forward", len(task.params))
        for symbol, family, _, _, task in planned
        if task is not None
    ]
    report = Reporter(ctx, 0, "walk-forward", steps=steps)
    report.check()
    trained = iter(_evaluator()([p[4] for p in planned if p[4] is not None], report.reach))
    out = {s: _Discovered(f["ts"].to_numpy(), [], 0) for s, f in bars.items()}
    for symbol, family, close, candidates, task in planned:
        if task is None:
            continue
        wf = research.walk_forward(
            close,
            family,
            candidates,
            payload.folds,
            next(trained),
            payload.metric,
            payload.cost,
            payload.risk_free,
        )
        found = out[symbol]
        out[symbol] = _Discovered(
            found.ts,
            [*found.found, wf] if wf.beats_benchmark else found.found,
            found.evaluated + len(candidates),
        )
    report.computed(f"storing {sum(len(d.found) for d in out.values())} discovered strategies")
    return out


async def save_discover(
    db: Database,
    job: Claimed,
    payload: StrategyDiscover,
    output: dict[str, _Discovered],
) -> JSON:
    summary: dict[str, JSON] = {}
    discovered = 0
    written: list[int] = []
    async with db.transaction() as conn:
        fresh = await _fresh_save(conn, job)
        for symbol, item in sorted(output.items()):
            kept: list[JSON] = []
            discovered += len(item.found)
            for wf in item.found:
                first, last = wf.folds[0][0], wf.folds[-1][1]
                start, end = _segment_span(item.ts, first, last)
                params = wf.chosen[-1]["params"]  # what the last fold trades: the live choice
                row = {
                    "params": params,
                    "sample": "walk_forward",
                    "selected": True,
                    "start_ts": start,
                    "end_ts": end,
                    "bars": last - first,
                    "metrics": _metrics_json(wf.strategy),
                    "benchmark": {
                        "strategy": "buy_and_hold",
                        "metrics": _metrics_json(wf.benchmark),
                        "folds": wf.chosen,
                    },
                }
                written += await _save_runs(
                    conn,
                    job,
                    fresh,
                    symbol,
                    payload.interval,
                    wf.family,
                    payload.cost,
                    payload.risk_free,
                    _Runs.of([row]),
                    _published(job, payload),
                )
                kept.append(
                    {
                        "strategy_id": await conn.fetchval(
                            results.RUN_ID, job.id, symbol, wf.family, params, "walk_forward"
                        ),
                        "family": wf.family,
                        "params": params,
                        payload.metric: research.finite(getattr(wf.strategy, payload.metric)),
                        "buy_and_hold": research.finite(getattr(wf.benchmark, payload.metric)),
                    }
                )
            summary[symbol] = {"evaluated": item.evaluated, "discovered": kept}
        if not fresh:
            await conn.execute(results.DELETE_STALE_RUNS, job.id, written)
    return {
        "metric": payload.metric,
        "folds": payload.folds,
        "symbols": summary,
        "discovered": discovered,
    }


# -- patterns.analyze --------------------------------------------------------------------------


async def load_ohlc(
    db: Database, job: Claimed, payload: PatternsAnalyze
) -> dict[str, pd.DataFrame]:
    since = _day_start(payload.since)
    start = None if since is None else since - PATTERN_WARMUP
    return {s: await _bars(db, s, payload.interval, start, None, 1) for s in payload.symbols}


@dataclass(frozen=True)
class _Patterns:
    found: pd.DataFrame
    first: datetime
    """The analysed window, whose stored patterns the save replaces."""
    last: datetime


def analyze(
    ctx: JobContext, payload: PatternsAnalyze, bars: dict[str, pd.DataFrame]
) -> dict[str, _Patterns]:
    report = Reporter(ctx, len(bars))
    since = _day_start(payload.since)
    out = {}
    for symbol, frame in bars.items():
        report.check(f"patterns in {symbol}")
        found = candles.analyze(frame)
        ts = pd.to_datetime(frame["ts"], utc=True)
        first = ts.iloc[0] if since is None else max(ts.iloc[0], pd.Timestamp(since))
        found = found[pd.to_datetime(found["ts"], utc=True) >= first]
        out[symbol] = _Patterns(
            found.reset_index(drop=True), first.to_pydatetime(), ts.iloc[-1].to_pydatetime()
        )
        report.advance(1)
    report.computed()
    return out


async def save_patterns(
    db: Database, job: Claimed, payload: PatternsAnalyze, output: dict[str, _Patterns]
) -> JSON:
    summary: dict[str, JSON] = {}
    async with db.transaction() as conn:
        for symbol, item in sorted(output.items()):
            found = item.found
            await conn.execute(
                results.DELETE_PATTERNS, symbol, payload.interval, item.first, item.last
            )
            await conn.execute(
                results.UPSERT_PATTERNS,
                symbol,
                payload.interval,
                job.id,
                [pd.Timestamp(t).to_pydatetime() for t in found["ts"]],
                found["pattern"].astype(str).tolist(),
                found["direction"].astype(str).tolist(),
                found["strength"].astype(float).tolist(),
            )
            counts = found["pattern"].value_counts()
            summary[symbol] = {str(k): int(v) for k, v in sorted(counts.items())}
    return {"symbols": summary, "patterns": sum(len(p.found) for p in output.values())}


# -- leaderboard.refresh -----------------------------------------------------------------------


async def load_candidates(
    db: Database, job: Claimed, payload: LeaderboardRefresh
) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(results.LEADERBOARD_CANDIDATES, payload.window_days)]


def rank(
    ctx: JobContext, payload: LeaderboardRefresh, candidates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return research.rank(candidates, payload.metric, payload.limit)


async def save_leaderboard(
    db: Database, job: Claimed, payload: LeaderboardRefresh, entries: list[dict[str, Any]]
) -> JSON:
    async with db.transaction() as conn:
        snapshot = await conn.fetchval(
            results.SAVE_SNAPSHOT, job.id, payload.metric, payload.window_days
        )
        await conn.execute(results.DELETE_ENTRIES, snapshot)
        await conn.execute(
            results.INSERT_ENTRIES,
            snapshot,
            [e["rank"] for e in entries],
            [e["id"] for e in entries],
            [e["symbol"] for e in entries],
            [e["family"] for e in entries],
            [_json(e["params"]) for e in entries],
            [float(e["score"]) for e in entries],
            [_json({m: research.finite(_number(e[m])) for m in METRIC_NAMES}) for e in entries],
        )
    return {
        "snapshot_id": snapshot,
        "metric": payload.metric,
        "entries": len(entries),
        "top": [
            {k: e[k] for k in ("rank", "symbol", "family", "params", "score")}
            | {"strategy_id": e["id"]}
            for e in entries[:5]
        ],
    }


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)
