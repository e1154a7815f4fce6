"""The research read side: prices, strategies, leaderboards and patterns.

Prices, patterns and leaderboards are the platform's shared market research: every
authenticated caller reads them. A strategy run belongs to the owner of the job that made it,
like the job itself: a user sees its own and the published ones (the platform's research,
which the leaderboard ranks), an admin everyone's; another's unpublished run answers 404.
Listings are keyset-paginated like `/v1/jobs`: pass `next_cursor` back as `cursor`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, StringConstraints

from api.auth import Caller
from api.errors import ERRORS, ApiError
from api.keys import Principal
from api.routing import GuardedRoute
from api.schemas import Timestamp
from compute.specs import COUNT_METRICS, METRIC_NAMES, SYMBOL, AnyMetric, Family, PatternName
from jobs.db import Record
from stores.research import ResearchStore

router = APIRouter(route_class=GuardedRoute, prefix="/v1", responses=ERRORS)

SymbolPath = Annotated[str, Path(pattern=SYMBOL, description="e.g. AAPL")]
SymbolsQuery = Annotated[
    list[Annotated[str, StringConstraints(pattern=SYMBOL)]] | None,
    Query(max_length=100, description="repeat for several: any matches"),
]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
STRATEGY_CURSOR = r"^(-?(?:[0-9]{1,20}(?:\.[0-9]{1,20})?(?:e[+-]?[0-9]{1,3})?|inf))_([0-9]{1,18})$"
PATTERN_CURSOR = r"^(-?[0-9]{1,16})_([0-9]{1,18})$"
_KEYSET = re.compile(STRATEGY_CURSOR)
"""`<number>_<id>`: the previous page's last sort key (exactly, as Python's repr of a float,
or microseconds) and id."""


class Bar(BaseModel):
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: str
    adjustment: Literal["none", "split_dividend"] = Field(
        description="split_dividend: scaled so splits and dividends are no jumps; none: as traded"
    )


class PricePage(BaseModel):
    symbol: str
    interval: str
    bars: list[Bar]
    next_cursor: str | None


class StrategyOut(BaseModel):
    id: int
    job_id: int
    owner: str
    kind: str
    symbol: str
    interval: str
    family: str
    params: dict[str, Any]
    sample: Literal["in", "out", "walk_forward"]
    selected: bool = Field(description="the run its job chose (best in-sample, or discovered)")
    start_ts: datetime
    end_ts: datetime
    bars: int
    cost: float
    risk_free: float
    conventions: dict[str, Any]
    benchmark: dict[str, Any] | None
    published: bool = Field(description="shared with every user and on the leaderboard")
    created_at: datetime
    metrics: dict[str, int | float | None]


class StrategyPage(BaseModel):
    strategies: list[StrategyOut]
    next_cursor: str | None


class LeaderboardEntry(BaseModel):
    rank: int
    strategy_id: int
    symbol: str
    family: str
    params: dict[str, Any]
    score: float
    metrics: dict[str, int | float | None]


class Leaderboard(BaseModel):
    id: int
    job_id: int
    metric: str
    window_days: int | None
    created_at: datetime
    entries: list[LeaderboardEntry]


class PatternOut(BaseModel):
    id: int
    symbol: str
    interval: str
    ts: datetime
    pattern: str
    direction: Literal["bullish", "bearish", "neutral"]
    strength: float


class PatternPage(BaseModel):
    patterns: list[PatternOut]
    next_cursor: str | None


def _research(request: Request) -> ResearchStore:
    research: ResearchStore = request.app.state.research
    return research


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime) -> int:
    """Microseconds since the epoch, exactly: integer arithmetic on the timedelta, not a
    float timestamp (a double holds today's microseconds only to about ±0.24 µs, so about 1.4 %
    of sub-second stamps came back one microsecond off and a page repeated or skipped a row)."""
    return (ts - EPOCH) // timedelta(microseconds=1)


def _from_micros(value: str) -> datetime:
    try:
        return EPOCH + timedelta(microseconds=int(value))
    except (ValueError, OverflowError):
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave") from None


def _keyset(cursor: str | None) -> tuple[str, int] | None:
    if cursor is None:
        return None
    match = _KEYSET.match(cursor)
    if match is None or int(match[2]) > 2**63 - 1:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave")
    return match[1], int(match[2])


def _metric(name: str, value: Any) -> float | int | None:
    """A metric as served: None when undefined, a count (`trades`) as an integer."""
    if value is None or not math.isfinite(float(value)):
        return None
    return int(value) if name in COUNT_METRICS else float(value)


def _metrics(values: Mapping[str, Any]) -> dict[str, float | int | None]:
    return {m: _metric(m, values.get(m)) for m in METRIC_NAMES if m in values}


def _strategy(row: Record) -> StrategyOut:
    data = dict(row)
    data["metrics"] = _metrics({m: data.pop(m) for m in METRIC_NAMES})
    return StrategyOut.model_validate(data)


@router.get("/prices/{symbol}", response_model=PricePage, tags=["research"])
async def prices(
    request: Request,
    symbol: SymbolPath,
    _who: Caller,
    start: Timestamp | None = None,
    end: Timestamp | None = None,
    interval: Literal["1d"] = "1d",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(pattern=r"^-?[0-9]{1,16}$")] = None,
) -> PricePage:
    """Stored bars of `symbol`, oldest first. 404 when none are stored at all (run a
    `prices.ingest` job); an empty page when none fall in [start, end]."""
    research = _research(request)
    after = _from_micros(cursor) if cursor else None
    rows = await research.bars(symbol, interval, start, end, after, limit + 1)
    if not rows and after is None and not await research.has_bars(symbol, interval):
        raise ApiError(
            404,
            "no_prices",
            f"no {interval} bars are stored for {symbol}: submit a prices.ingest job for it",
        )
    page = rows[:limit]
    more = len(rows) > limit
    return PricePage(
        symbol=symbol,
        interval=interval,
        bars=[Bar.model_validate(dict(r)) for r in page],
        next_cursor=str(_micros(page[-1]["ts"])) if more else None,
    )


@router.get("/strategies", response_model=StrategyPage, tags=["research"])
async def strategies(
    request: Request,
    who: Caller,
    symbol: SymbolsQuery = None,
    family: Annotated[list[Family] | None, Query(max_length=20)] = None,
    kind: Annotated[
        list[Literal["strategy.optimize", "strategy.discover"]] | None, Query(max_length=2)
    ] = None,
    sample: Annotated[
        list[Literal["in", "out", "walk_forward"]] | None, Query(max_length=3)
    ] = None,
    selected: bool | None = None,
    job_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    sort: Annotated[
        AnyMetric | None,
        Query(description="a metric, highest first (undefined last); default newest first"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(pattern=STRATEGY_CURSOR)] = None,
) -> StrategyPage:
    """Stored strategy runs: your own and the published (an admin's: everyone's).
    `symbol`, `family`, `kind` and `sample` repeat: any of the values matches."""
    key = _keyset(cursor)
    cursor_id = cursor_value = None
    if key is not None:
        cursor_id = key[1]
        cursor_value = _number(key[0]) if sort else None
    rows = await _research(request).strategies(
        sort,
        owner=who.owner_filter,
        symbols=symbol,
        families=family,
        kinds=kind,
        samples=sample,
        selected=selected,
        job_id=job_id,
        cursor_id=cursor_id,
        cursor_value=cursor_value,
        limit=limit + 1,
    )
    page = [_strategy(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        value = last[sort] if sort else 0
        next_cursor = f"{_sort_key(value)}_{last['id']}"
    return StrategyPage(strategies=page, next_cursor=next_cursor)


def _sort_key(value: float | None) -> str:
    """The sort key exactly (repr round-trips a float), undefined as -inf, as SQL sorts it."""
    if value is None or math.isnan(value):
        return "-inf"
    return repr(float(value))


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave") from None
    if math.isnan(value):
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API gave")
    return value


@router.get("/strategies/{strategy_id}", response_model=StrategyOut, tags=["research"])
async def strategy(request: Request, strategy_id: Id, who: Caller) -> StrategyOut:
    return _strategy(await _visible_run(_research(request), strategy_id, who))


class StrategyRuns(BaseModel):
    runs: list[StrategyOut] = Field(
        description="in-sample then out-of-sample (an optimization), or the walk-forward run"
    )


@router.get("/strategies/{strategy_id}/runs", response_model=StrategyRuns, tags=["research"])
async def strategy_runs(request: Request, strategy_id: Id, who: Caller) -> StrategyRuns:
    """The same strategy (symbol, family, parameters) in the same job, every sample: how it
    did on the bars it was chosen on beside the ones it was not."""
    research = _research(request)
    run = await _visible_run(research, strategy_id, who)
    rows = await research.same_strategy_runs(
        run["job_id"], run["symbol"], run["family"], run["params"]
    )
    return StrategyRuns(runs=[_strategy(r) for r in rows])


async def _visible_run(research: ResearchStore, strategy_id: int, who: Principal) -> Record:
    row = await research.strategy(strategy_id, who.owner_filter)
    if row is None:
        raise ApiError(404, "strategy_not_found", f"there is no strategy run {strategy_id}")
    return row


class CurveTrade(BaseModel):
    direction: Literal["long", "short"]
    entry_ts: datetime
    entry_price: float = Field(description="the close the position was taken at")
    exit_ts: datetime | None = Field(description="null: still open at the run's end")
    exit_price: float | None
    bars: int = Field(description="bars held")
    trade_return: float = Field(description="compounded over the bars held, after costs")


class CurveFold(BaseModel):
    start_ts: datetime
    end_ts: datetime
    params: dict[str, Any]
    traded: bool = Field(description="false: nothing was defined before it, so it stayed flat")


class Curve(BaseModel):
    strategy_id: int
    symbol: str
    interval: str
    family: str
    sample: Literal["in", "out", "walk_forward"]
    ts: list[datetime] = Field(description="every bar of the run, its first to its last")
    close: list[float]
    equity: list[float] = Field(description="growth of 1 from the first bar, after costs")
    buy_and_hold: list[float] = Field(description="holding the symbol over the same bars")
    drawdown: list[float] = Field(description="equity below its running peak, ≤ 0")
    trades: list[CurveTrade]
    folds: list[CurveFold] = Field(description="a walk-forward run's windows and parameters")
    metrics: dict[str, int | float | None] = Field(description="of the recomputed equity")
    buy_and_hold_metrics: dict[str, int | float | None]
    matches_stored: bool = Field(
        description="the recomputed metrics are the stored ones (false once the bars were"
        " re-ingested with other values: re-run the job)"
    )


@router.get("/strategies/{strategy_id}/curve", response_model=Curve, tags=["research"])
async def strategy_curve(request: Request, strategy_id: Id, who: Caller) -> Curve:
    """A run's equity against buy-and-hold, its drawdown and its trades, recomputed on
    request from the stored prices by the engine that scored it. 409 when the bars it was
    scored on are no longer stored."""
    research = _research(request)
    run = await _visible_run(research, strategy_id, who)
    siblings = await research.same_strategy_runs(
        run["job_id"], run["symbol"], run["family"], run["params"]
    )
    plan = _series_plan(run, siblings)
    bars = await research.series_ending(
        run["symbol"], run["interval"], plan.end_ts, plan.returns + 1
    )
    if len(bars) != plan.returns + 1 or bars[plan.segment[0]]["ts"] != run["start_ts"]:
        raise ApiError(
            409,
            "prices_changed",
            f"the {run['symbol']} bars this run was scored on are no longer all stored"
            f" ({len(bars)} of {plan.returns + 1} up to {plan.end_ts:%Y-%m-%d}): re-ingest"
            " them, or run the job again",
        )
    # numpy and the engine only here: imported at start they cost every API process a fifth
    # of a second of CPU before it listens, for the one route that needs them.
    import numpy as np

    from compute import curves

    close = np.asarray([b["close"] for b in bars], dtype=np.float64)
    folds = [curves.Fold(f.start, f.end, f.params, f.traded) for f in plan.folds]
    replay = await asyncio.to_thread(
        curves.replay,
        close,
        run["family"],
        run["cost"],
        run["risk_free"],
        plan.segment,
        params=None if folds else run["params"],
        folds=folds or None,
    )
    ts = [b["ts"] for b in bars]
    a, b = plan.segment
    recomputed = _metrics(replay.metrics.as_dict())
    stored = _metrics({m: run[m] for m in METRIC_NAMES})
    return Curve(
        strategy_id=run["id"],
        symbol=run["symbol"],
        interval=run["interval"],
        family=run["family"],
        sample=run["sample"],
        ts=ts[a : b + 1],
        close=close[a : b + 1].tolist(),
        equity=replay.equity.tolist(),
        buy_and_hold=replay.buy_and_hold.tolist(),
        drawdown=replay.drawdown.tolist(),
        trades=[
            CurveTrade(
                direction=t.direction,  # type: ignore[arg-type]
                entry_ts=ts[a + t.entry],
                entry_price=float(close[a + t.entry]),
                exit_ts=None if t.exit is None else ts[a + t.exit],
                exit_price=None if t.exit is None else float(close[a + t.exit]),
                bars=(b - a if t.exit is None else t.exit) - t.entry,
                trade_return=t.ret,
            )
            for t in replay.trades
        ],
        folds=[
            CurveFold(start_ts=ts[f.start], end_ts=ts[f.end], params=f.params, traded=f.traded)
            for f in plan.folds
        ],
        metrics=recomputed,
        buy_and_hold_metrics=_metrics(replay.buy_and_hold_metrics.as_dict()),
        matches_stored=_same_metrics(recomputed, stored),
    )


@dataclass(frozen=True)
class _PlannedFold:
    start: int
    end: int
    params: dict[str, Any]
    traded: bool


@dataclass(frozen=True)
class _SeriesPlan:
    """Where a run's series ends, how many returns it has, and the run's part of them."""

    end_ts: datetime
    returns: int
    segment: tuple[int, int]
    folds: list[_PlannedFold]


def _series_plan(run: Record, siblings: list[Record]) -> _SeriesPlan:
    if run["sample"] == "walk_forward":
        folds = [
            _PlannedFold(int(f["from"]), int(f["to"]), f["params"], bool(f.get("traded", True)))
            for f in (run["benchmark"] or {}).get("folds", [])
        ]
        if not folds:
            raise ApiError(409, "curve_unavailable", "this run records no folds to replay")
        return _SeriesPlan(run["end_ts"], folds[-1].end, (folds[0].start, folds[-1].end), folds)
    samples = {r["sample"]: r for r in siblings}
    if "in" not in samples or "out" not in samples:
        raise ApiError(
            409,
            "curve_unavailable",
            "this run's in- and out-of-sample pair is not both stored, so its series is unknown",
        )
    cut, n = samples["in"]["bars"], samples["in"]["bars"] + samples["out"]["bars"]
    segment = (0, cut) if run["sample"] == "in" else (cut, n)
    return _SeriesPlan(samples["out"]["end_ts"], n, segment, [])


def _same_metrics(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    for name in METRIC_NAMES:
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            if x is not y:
                return False
        elif not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
            return False
    return True


class GridAxis(BaseModel):
    name: str
    values: list[float]


class OptimizationGrid(BaseModel):
    strategy_id: int
    job_id: int
    symbol: str
    metric: str
    sample: Literal["in"]
    axes: list[GridAxis] = Field(description="in the family's parameter order")
    values: list[Any] = Field(
        description="the metric as nested lists, one level per axis in order (null: undefined)"
    )
    best: dict[str, Any] | None = Field(description="the parameter set the job chose")


@router.get("/strategies/{strategy_id}/grid", response_model=OptimizationGrid, tags=["research"])
async def optimization_grid(request: Request, strategy_id: Id, who: Caller) -> OptimizationGrid:
    """The grid an optimized run was chosen from, for a heatmap: the in-sample metric of
    every parameter set, as its job stored it. 404 for a discovered run, once the job is
    no longer kept, or when the grid was too large to keep (its runs are all stored)."""
    research = _research(request)
    run = await _visible_run(research, strategy_id, who)
    entry = await research.optimization_grid(run["job_id"], run["symbol"])
    if not entry or not entry.get("grid"):
        why = (
            "only an optimization has a grid"
            if run["kind"] != "strategy.optimize"
            else "its job is no longer kept, or its grid was too large to keep"
        )
        raise ApiError(404, "grid_not_found", f"no grid for strategy run {strategy_id}: {why}")
    grid = entry["grid"]
    return OptimizationGrid(
        strategy_id=run["id"],
        job_id=run["job_id"],
        symbol=run["symbol"],
        metric=grid["metric"],
        sample=grid["sample"],
        axes=grid["axes"],
        values=grid["values"],
        best=(entry.get("best") or {}).get("params"),
    )


class StoredSeries(BaseModel):
    symbol: str
    interval: str
    first: datetime
    last: datetime


class StoredSymbols(BaseModel):
    symbols: list[StoredSeries]


@router.get("/symbols", response_model=StoredSymbols, tags=["research"])
async def stored_symbols(request: Request, _who: Caller) -> StoredSymbols:
    """Every symbol with stored bars, per interval, with its first and last bar."""
    rows = await _research(request).stored_symbols()
    return StoredSymbols(symbols=[StoredSeries.model_validate(dict(r)) for r in rows])


async def _leaderboard(research: ResearchStore, snapshot: Record) -> Leaderboard:
    entries = await research.snapshot_entries(snapshot["id"])
    return Leaderboard(
        **dict(snapshot),
        entries=[
            LeaderboardEntry.model_validate({**dict(e), "metrics": _metrics(e["metrics"])})
            for e in entries
        ],
    )


@router.get("/leaderboard", response_model=Leaderboard, tags=["research"])
async def latest_leaderboard(request: Request, _who: Caller) -> Leaderboard:
    """The shared leaderboard's newest snapshot: published strategies (the platform's own
    research, and an admin's submitted with `publish`), ranked by the hourly
    `leaderboard.refresh`. Your own strategies rank at `GET /v1/leaderboard/mine`."""
    research = _research(request)
    snapshot = await research.latest_snapshot()
    if snapshot is None:
        raise ApiError(
            404,
            "no_leaderboard",
            "no shared leaderboard yet: it ranks published strategies, and the hourly"
            " leaderboard.refresh has not run since any were stored. Your own optimized and"
            " discovered strategies rank at GET /v1/leaderboard/mine at once",
        )
    return await _leaderboard(research, snapshot)


class OwnLeaderboard(BaseModel):
    owner: str
    metric: str
    window_days: int | None
    entries: list[LeaderboardEntry]


@router.get("/leaderboard/mine", response_model=OwnLeaderboard, tags=["research"])
async def own_leaderboard(
    request: Request,
    who: Caller,
    metric: AnyMetric = "sharpe",
    window_days: Annotated[int | None, Query(ge=1, le=3650)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> OwnLeaderboard:
    """Your own strategies ranked now, by the shared leaderboard's rule: the newest selected
    out-of-sample (or walk-forward) run of each distinct strategy, highest `metric` first.
    Empty until one of your strategy.optimize or strategy.discover jobs has stored runs."""
    rows = await _research(request).own_leaderboard(metric, who.owner, window_days, limit)
    entries = [
        LeaderboardEntry(
            rank=r["rank"],
            strategy_id=r["id"],
            symbol=r["symbol"],
            family=r["family"],
            params=r["params"],
            score=r["score"],
            metrics=_metrics(dict(r)),
        )
        for r in rows
    ]
    return OwnLeaderboard(owner=who.owner, metric=metric, window_days=window_days, entries=entries)


@router.get("/leaderboard/{snapshot_id}", response_model=Leaderboard, tags=["research"])
async def leaderboard(request: Request, snapshot_id: Id, _who: Caller) -> Leaderboard:
    research = _research(request)
    snapshot = await research.snapshot(snapshot_id)
    if snapshot is None:
        raise ApiError(404, "snapshot_not_found", f"there is no leaderboard snapshot {snapshot_id}")
    return await _leaderboard(research, snapshot)


@router.get("/patterns", response_model=PatternPage, tags=["research"])
async def list_patterns(
    request: Request,
    _who: Caller,
    symbol: SymbolsQuery = None,
    since: Timestamp | None = None,
    pattern: Annotated[list[PatternName] | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=PATTERN_CURSOR)] = None,
) -> PatternPage:
    """Detected patterns, newest bar first. `symbol` and `pattern` repeat: any matches."""
    key = _keyset(cursor)
    before_ts = _from_micros(key[0]) if key else None  # _from_micros refuses non-integers
    rows = await _research(request).patterns(
        symbol,
        since,
        pattern,
        before_ts,
        key[1] if key else None,
        limit + 1,
    )
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return PatternPage(
        patterns=[PatternOut.model_validate(dict(r)) for r in page],
        next_cursor=f"{_micros(last['ts'])}_{last['id']}" if last else None,
    )
