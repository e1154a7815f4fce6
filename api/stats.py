"""Charts' figures for operators: per kind, how many finished and how, the failure rate, and
how long jobs waited (due → claimed) and ran (p50/p95), over the last hour or day; queue depth
over time. Served from the per-minute aggregates the workers write (`job_minute`,
`queue_depth`), never from `job`, so a call costs the same with a million finished jobs as
with none. Admin only: the aggregates have no owner, they are the whole deployment's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import Admin
from api.errors import ERRORS
from api.routing import GuardedRoute
from api.schemas import NAME
from jobs import sql
from jobs.metrics import DURATION_BUCKETS_S, add_buckets, quantile, window_starts
from jobs.store import Store

router = APIRouter(route_class=GuardedRoute)

Window = Literal["1h", "24h"]
WINDOWS: dict[str, tuple[int, int]] = {"1h": (60, 1), "24h": (1440, 5)}
"""A window's length and its queue depth series' bucket, in minutes."""
KIND_WINDOWS: dict[str, tuple[int, int]] = {"1h": (60, 1), "24h": (1440, 60)}
"""The same for the kinds' figures: a day is its 24 clock hours (the current one filling),
read from `job_hour`, so that it costs 24 rows per (queue, kind, outcome), not 1,440."""

OUTCOMES = ("succeeded", "dead", "cancelled", "retried", "snoozed", "released", "lease_expired")
"""`jobs.metrics.outcome_label`'s values, each a field of its own below."""
FINAL = ("succeeded", "dead", "cancelled")

_OVER = (
    f"percentiles that fall past the histogram's last bound ({DURATION_BUCKETS_S[-1]:g} s): "
    "their value is that bound, the real one is longer"
)


class OutcomeCounts(BaseModel):
    finished: int = Field(0, description="jobs that reached an end: succeeded + dead + cancelled")
    succeeded: int = 0
    dead: int = 0
    cancelled: int = 0
    retried: int = Field(0, description="attempts that failed and were scheduled again")
    snoozed: int = 0
    released: int = Field(0, description="handed back by a worker unstarted (no attempt used)")
    lease_expired: int = Field(0, description="attempts whose worker stopped heartbeating")


class Timings(BaseModel):
    wait_p50_s: float | None = Field(
        None, description="median time from due (run_at) to claimed; null: none started"
    )
    wait_p95_s: float | None = None
    run_p50_s: float | None = Field(None, description="median handler time; null: none timed")
    run_p95_s: float | None = None
    over_last_bound: list[str] = Field(default_factory=list, description=_OVER)


class KindStats(OutcomeCounts, Timings):
    kind: str
    failure_rate: float | None = Field(
        description="dead / (succeeded + dead); null when neither happened"
    )


class SeriesPoint(OutcomeCounts, Timings):
    bucket: datetime = Field(description="the bucket's start")


class KindSeries(BaseModel):
    kind: str
    points: list[SeriesPoint] = Field(description="one per bucket, oldest first")


class KindStatsOut(BaseModel):
    window: Window
    since: datetime = Field(description="the window's first minute")
    bucket_minutes: int = Field(description="a series point's width: 1 for 1h, 60 for 24h")
    kinds: list[KindStats] = Field(description="every kind with an attempt in the window")
    series: KindSeries | None = Field(description="the asked `kind`'s series (null: none asked)")


class DepthLine(BaseModel):
    queue: str
    queued: list[int | None] = Field(description="per bucket; null: nobody sampled then")
    running: list[int | None]


class DepthOut(BaseModel):
    window: Window
    bucket_minutes: int
    buckets: list[datetime] = Field(description="the buckets' starts, oldest first")
    queues: list[DepthLine] = Field(
        description="the most queued and running of each bucket's once-a-minute samples"
    )


# -- the figures, decided from the aggregates' rows (pure) --------------------------------


def outcome_counts(by_outcome: Mapping[str, int]) -> dict[str, int]:
    counts = {o: int(by_outcome.get(o, 0)) for o in OUTCOMES}
    return {"finished": sum(counts[o] for o in FINAL), **counts}


def failure_rate(succeeded: int, dead: int) -> float | None:
    return dead / (succeeded + dead) if succeeded + dead else None


def timings(wait_buckets: Sequence[int], run_buckets: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    over: list[str] = []
    for name, buckets in (("wait", wait_buckets), ("run", run_buckets)):
        for q, label in ((0.5, "p50"), (0.95, "p95")):
            field = f"{name}_{label}_s"
            found = quantile(buckets, q)
            out[field] = None if found is None else round(found.seconds, 6)
            if found is not None and found.over:
                over.append(field)
    out["over_last_bound"] = over
    return out


class _Sum:
    """Outcome counts and histograms of several rows added up."""

    def __init__(self) -> None:
        self.by_outcome: dict[str, int] = {}
        self.wait = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.run = [0] * (len(DURATION_BUCKETS_S) + 1)

    def add(self, row: Mapping[str, Any]) -> None:
        self.by_outcome[row["outcome"]] = self.by_outcome.get(row["outcome"], 0) + row["finished"]
        self.wait = add_buckets(self.wait, row["wait_buckets"])
        self.run = add_buckets(self.run, row["run_buckets"])

    def figures(self) -> dict[str, Any]:
        return {**outcome_counts(self.by_outcome), **timings(self.wait, self.run)}


def kind_stats(rows: Iterable[Mapping[str, Any]]) -> list[KindStats]:
    """Rows of `Store.kind_totals` (per kind and outcome) to one line per kind."""
    sums: dict[str, _Sum] = {}
    for r in rows:
        sums.setdefault(r["kind"], _Sum()).add(r)
    out = []
    for kind in sorted(sums):
        figures = sums[kind].figures()
        rate = failure_rate(figures["succeeded"], figures["dead"])
        out.append(KindStats(kind=kind, failure_rate=rate, **figures))
    return out


def series_points(
    buckets: Sequence[datetime], rows: Iterable[Mapping[str, Any]]
) -> list[SeriesPoint]:
    """Rows of `Store.kind_series` (per bucket and outcome) to one point per bucket, empty
    buckets included; a row outside the buckets (a worker's clock ahead) is left out."""
    sums = {b: _Sum() for b in buckets}
    for r in rows:
        if r["bucket"] in sums:
            sums[r["bucket"]].add(r)
    return [SeriesPoint(bucket=b, **sums[b].figures()) for b in buckets]


def depth_lines(buckets: Sequence[datetime], rows: Iterable[Mapping[str, Any]]) -> list[DepthLine]:
    """Rows of `Store.depth_series` to one line per queue aligned with `buckets`: a bucket
    that was sampled (its marker row is there) but has no row for a queue had none of its
    jobs (0); one nobody sampled (no worker ran) is null."""
    at = {b: i for i, b in enumerate(buckets)}
    sampled: set[int] = set()
    lines: dict[str, tuple[list[int | None], list[int | None]]] = {}
    for r in rows:
        i = at.get(r["bucket"])
        if i is None:
            continue
        sampled.add(i)
        if r["queue"] == sql.DEPTH_MARKER:
            continue
        queued, running = lines.setdefault(
            r["queue"], ([None] * len(buckets), [None] * len(buckets))
        )
        queued[i], running[i] = r["queued"], r["running"]
    for queued, running in lines.values():
        for i in sampled:
            if queued[i] is None:
                queued[i] = running[i] = 0
    return [DepthLine(queue=q, queued=v[0], running=v[1]) for q, v in sorted(lines.items())]


# -- routes ---------------------------------------------------------------------------------

WindowQuery = Annotated[Window, Query(description="the last hour (1h) or day (24h)")]


@router.get("/v1/stats/kinds", response_model=KindStatsOut, responses=ERRORS, tags=["ops"])
async def kinds(
    request: Request,
    _admin: Admin,
    window: WindowQuery = "1h",
    kind: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=NAME,
            description="also this kind's series over the window, per minute (1h) or per "
            "hour (24h)",
        ),
    ] = None,
) -> KindStatsOut:
    """Admin only (the figures are the whole deployment's, every owner's jobs): per kind
    over the last hour or day, how many attempts ended and how, the failure rate
    (dead / (succeeded + dead)), and p50/p95 of how long its jobs waited (due → claimed)
    and ran. The day is its 24 clock hours, the current one filling. From the workers'
    aggregates (`job_minute`, `job_hour`: up to a heartbeat behind), never the jobs table."""
    store: Store = request.app.state.store
    minutes, bucket = KIND_WINDOWS[window]
    buckets = window_starts(await store.now(), minutes, bucket)
    rows = await store.kind_totals(buckets[0])
    series = None
    if kind is not None:
        points = series_points(buckets, await store.kind_series(kind, buckets[0], bucket))
        series = KindSeries(kind=kind, points=points)
    return KindStatsOut(
        window=window,
        since=buckets[0],
        bucket_minutes=bucket,
        kinds=kind_stats(rows),
        series=series,
    )


@router.get("/v1/stats/depth", response_model=DepthOut, responses=ERRORS, tags=["ops"])
async def depth(request: Request, _admin: Admin, window: WindowQuery = "1h") -> DepthOut:
    """Admin only: each queue's queued and running jobs over the last hour (a point a minute)
    or day (the most of each 5 minutes), as the first worker to heartbeat in each minute
    counted them (`queue_depth`)."""
    store: Store = request.app.state.store
    minutes, bucket = WINDOWS[window]
    buckets = window_starts(await store.now(), minutes, bucket)
    rows = await store.depth_series(buckets[0], bucket)
    return DepthOut(
        window=window, bucket_minutes=bucket, buckets=buckets, queues=depth_lines(buckets, rows)
    )
