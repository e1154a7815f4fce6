"""Counts of finished jobs and how long they waited and ran: decided here, kept in
`job_stats` and `job_minute`.

Each worker tallies the outcomes it writes (and the leases its reaper expires) in memory and
adds the tally with its heartbeat: one small upsert per table every few seconds, not a write
per job. `job_stats` rows are keyed by (queue, kind, outcome) and only ever grow, so they
read as Prometheus counters, and the API serves them from any process. `job_minute` rows add
the minute of the finish (the worker's clock) and a histogram of how long each attempt
waited (due → claimed), for the dashboard's charts. A worker killed with -9 loses the tally
of its last few seconds; the jobs themselves are not affected.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from jobs.model import EventType, JobState

DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Upper bounds (seconds) of the duration histogram; a last bucket (+Inf) follows."""


def outcome_label(state: JobState, event: EventType | None) -> str:
    """The `outcome` label of an applied change: its new state, and for a job back in the
    queue, why (a failure to retry, a snooze, a shutdown release, an expired lease)."""
    if state is not JobState.QUEUED:
        return state.value
    return _REQUEUED_BECAUSE.get(event, "retried") if event else "retried"


_REQUEUED_BECAUSE = {
    EventType.SNOOZED: "snoozed",
    EventType.RELEASED: "released",
    EventType.LEASE_LOST: "lease_expired",
}


def success_rate(succeeded: int, dead: int) -> float | None:
    """The share of finished jobs that succeeded, cancelled ones left out (a cancel is an
    operator's decision, not the kind's failure); None when none finished."""
    finished = succeeded + dead
    return succeeded / finished if finished else None


def bucket_of(duration_s: float) -> int:
    """Index of the bucket `duration_s` falls in (len(DURATION_BUCKETS_S) for +Inf)."""
    return bisect_left(DURATION_BUCKETS_S, duration_s)


def _empty_buckets() -> list[int]:
    return [0] * (len(DURATION_BUCKETS_S) + 1)


@dataclass
class Counts:
    finished: int = 0
    duration_sum_s: float = 0.0
    buckets: list[int] = field(default_factory=_empty_buckets)

    def add(self, other: Counts) -> None:
        self.finished += other.finished
        self.duration_sum_s += other.duration_sum_s
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


Key = tuple[str, str, str]
"""(queue, kind, outcome)"""


@dataclass
class MinuteCounts:
    """One `job_minute` row's figures: how many finished, and histograms (per-bucket counts,
    DURATION_BUCKETS_S then +Inf) of how long they waited and ran."""

    finished: int = 0
    wait_sum_s: float = 0.0
    wait_buckets: list[int] = field(default_factory=_empty_buckets)
    run_sum_s: float = 0.0
    run_buckets: list[int] = field(default_factory=_empty_buckets)

    def add(self, other: MinuteCounts) -> None:
        self.finished += other.finished
        self.wait_sum_s += other.wait_sum_s
        self.run_sum_s += other.run_sum_s
        self.wait_buckets = add_buckets(self.wait_buckets, other.wait_buckets)
        self.run_buckets = add_buckets(self.run_buckets, other.run_buckets)


MinuteKey = tuple[int, str, str, str]
"""(minute, queue, kind, outcome); the minute as Unix seconds of its start (`minute_of`)."""


def minute_of(unix_s: float) -> int:
    """The start of the minute `unix_s` falls in, in Unix seconds (UTC minutes: every time
    zone in use today is a whole number of minutes off UTC)."""
    return int(unix_s // 60) * 60


def bucket_start(t: datetime, bucket_minutes: int) -> datetime:
    """The start of the `bucket_minutes`-long bucket `t` falls in, buckets counted from the
    Unix epoch (as SQL's `date_bin(..., timestamptz 'epoch')`)."""
    size = bucket_minutes * 60
    return datetime.fromtimestamp(int(t.timestamp() // size) * size, UTC)


def window_starts(now: datetime, minutes: int, bucket_minutes: int) -> list[datetime]:
    """The starts of the buckets that cover the last `minutes` minutes up to `now`, oldest
    first, the one holding `now` (still filling) last."""
    last = bucket_start(now, bucket_minutes)
    count = max(1, minutes // bucket_minutes)
    step = timedelta(minutes=bucket_minutes)
    return [last - step * (count - 1 - i) for i in range(count)]


def waited_s(run_at: datetime, started_at: datetime) -> float:
    """How long an attempt waited: from when it was due (`run_at`, a retry's backoff
    included) to its claim (`started_at`), both the database's clock; never negative (a
    claim may run a moment before a due time on a clock a few microseconds apart)."""
    return max(0.0, (started_at - run_at).total_seconds())


def add_buckets(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


@dataclass
class Tally:
    """What one worker finished since its last flush: running totals for `job_stats`, and
    per-minute figures for `job_minute`."""

    counts: dict[Key, Counts] = field(default_factory=dict)
    minutes: dict[MinuteKey, MinuteCounts] = field(default_factory=dict)

    def record(
        self,
        queue: str,
        kind: str,
        outcome: str,
        duration_s: float | None,
        *,
        wait_s: float | None = None,
        at: float | None = None,
    ) -> None:
        """One finished job; `duration_s` None when nobody timed it (an expired lease),
        `wait_s` None when it never started; `at` when it finished (Unix seconds; now)."""
        c = self.counts.setdefault((queue, kind, outcome), Counts())
        c.finished += 1
        minute = minute_of(time.time() if at is None else at)
        m = self.minutes.get((minute, queue, kind, outcome))
        if m is None:
            m = self.minutes[(minute, queue, kind, outcome)] = MinuteCounts()
        m.finished += 1
        if duration_s is not None:
            i = bucket_of(duration_s)
            c.duration_sum_s += duration_s
            c.buckets[i] += 1
            m.run_sum_s += duration_s
            m.run_buckets[i] += 1
        if wait_s is not None:
            m.wait_sum_s += wait_s
            m.wait_buckets[bucket_of(wait_s)] += 1

    def take(self) -> dict[Key, Counts]:
        """Everything recorded for `job_stats` so far; that tally starts again from zero."""
        taken, self.counts = self.counts, {}
        return taken

    def put_back(self, counts: dict[Key, Counts]) -> None:
        """A flush that failed: its counts join whatever was recorded meanwhile."""
        for key, c in counts.items():
            self.counts.setdefault(key, Counts()).add(c)

    def take_minutes(self) -> dict[MinuteKey, MinuteCounts]:
        """Everything recorded for `job_minute` so far; that tally starts again from zero."""
        taken, self.minutes = self.minutes, {}
        return taken

    def put_back_minutes(self, minutes: dict[MinuteKey, MinuteCounts]) -> None:
        """A `job_minute` flush that failed: its rows join whatever was recorded meanwhile
        (each keeps its own minute, so a late flush adds to the minutes they happened in)."""
        for key, m in minutes.items():
            self.minutes.setdefault(key, MinuteCounts()).add(m)


class Quantile(NamedTuple):
    """A percentile read from a histogram: `seconds`, or when it falls in the +Inf bucket,
    the last bound with `over` true (it is more than that, by how much nobody knows)."""

    seconds: float
    over: bool = False


def quantile(buckets: Sequence[int], q: float) -> Quantile | None:
    """The `q` quantile (0 < q < 1) of per-bucket counts over DURATION_BUCKETS_S + Inf, by
    linear interpolation inside the bucket that holds its rank (the first bucket starts at
    0), as Prometheus' histogram_quantile does. None when the histogram is empty."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for i, n in enumerate(buckets):
        if n and below + n >= rank:
            if i == len(DURATION_BUCKETS_S):
                return Quantile(DURATION_BUCKETS_S[-1], over=True)
            lo = DURATION_BUCKETS_S[i - 1] if i else 0.0
            hi = DURATION_BUCKETS_S[i]
            return Quantile(lo + (hi - lo) * (rank - below) / n)
        below += n
    raise AssertionError("unreachable: the last bucket holding a count holds the rank")


def cumulative(buckets: list[int]) -> list[int]:
    """Per-bucket counts to Prometheus' cumulative `le` counts."""
    total, out = 0, []
    for n in buckets:
        total += n
        out.append(total)
    return out
