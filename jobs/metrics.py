"""Counts of finished jobs and how long they ran: decided here, kept in `job_stats`.

Each worker tallies the outcomes it writes (and the leases its reaper expires) in memory and
adds the tally to `job_stats` with its heartbeat: one small upsert every few seconds, not a
write per job. Rows are keyed by (queue, kind, outcome) and only ever grow, so they read as
Prometheus counters, and the API serves them from any process. A worker killed with -9
loses the tally of its last few seconds; the jobs themselves are not affected.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

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


@dataclass
class Counts:
    finished: int = 0
    duration_sum_s: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS_S) + 1))

    def add(self, other: Counts) -> None:
        self.finished += other.finished
        self.duration_sum_s += other.duration_sum_s
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


Key = tuple[str, str, str]
"""(queue, kind, outcome)"""


@dataclass
class Tally:
    """What one worker finished since its last flush."""

    counts: dict[Key, Counts] = field(default_factory=dict)

    def record(self, queue: str, kind: str, outcome: str, duration_s: float | None) -> None:
        """One finished job; `duration_s` None when nobody timed it (an expired lease)."""
        c = self.counts.setdefault((queue, kind, outcome), Counts())
        c.finished += 1
        if duration_s is not None:
            c.duration_sum_s += duration_s
            c.buckets[bucket_of(duration_s)] += 1

    def take(self) -> dict[Key, Counts]:
        """Everything recorded so far; the tally starts again from zero."""
        taken, self.counts = self.counts, {}
        return taken

    def put_back(self, counts: dict[Key, Counts]) -> None:
        """A flush that failed: its counts join whatever was recorded meanwhile."""
        for key, c in counts.items():
            self.counts.setdefault(key, Counts()).add(c)


def cumulative(buckets: list[int]) -> list[int]:
    """Per-bucket counts to Prometheus' cumulative `le` counts."""
    total, out = 0, []
    for n in buckets:
        total += n
        out.append(total)
    return out
