"""The one place that decides what happens to a running job.

A handler's outcome (or the reaper's finding that a lease expired) goes in with the attempt
numbers and the time; a `Change` comes out; `store.finish_many` applies it with a fenced
UPDATE. Nothing here touches the database, so every rule is tested without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from jobs.backoff import Backoff
from jobs.model import JSON, EventType, JobState

TRACEBACK_TAIL_CHARS = 4000
MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Success:
    result: JSON = None


@dataclass(frozen=True, slots=True)
class Snoozed:
    """Run again after `after_s`; does not use up an attempt."""

    after_s: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job was cancelled (asked to, or its handler raised `jobs.handler.Cancel`): an
    outcome, not the exception, so the two names differ."""

    reason: str = "cancelled"


@dataclass(frozen=True, slots=True)
class Failure:
    """The handler raised. `retryable=False` goes straight to dead."""

    type: str
    message: str
    traceback: str | None = None
    retryable: bool = True


@dataclass(frozen=True, slots=True)
class Timeout:
    timeout_s: float


@dataclass(frozen=True, slots=True)
class LeaseExpired:
    """Found by the reaper: the holder stopped heartbeating. Counts as a failed attempt."""

    owner: str
    expired_at: datetime


@dataclass(frozen=True, slots=True)
class Release:
    """The worker is shutting down and hands the job back unfinished; no attempt is used up."""

    reason: str = "worker shutdown"


Outcome = Success | Snoozed | Cancelled | Failure | Timeout | LeaseExpired | Release


@dataclass(frozen=True, slots=True)
class Change:
    """What to write: the new state and everything that goes with it."""

    state: JobState
    run_after_s: float | None = None
    """Queued again: the job may run this many seconds after the database's clock at the
    write (one clock for every worker, as everywhere in `jobs.sql`). None: run_at stays."""
    result: JSON = None
    error: dict[str, JSON] | None = None
    """Appended to `job.errors` (one entry per failed attempt)."""
    extra_attempts: int = 0
    """Added to max_attempts so that a snooze or a release does not use up the budget: the
    attempt counter only grows, which keeps it usable as the lease's fencing token."""
    event: EventType | None = None
    event_data: dict[str, JSON] = field(default_factory=dict)


def error_entry(
    *, at: datetime, attempt: int, type: str, message: str, traceback: str | None = None
) -> dict[str, JSON]:
    # PostgreSQL's jsonb cannot hold NUL characters; an exception message may.
    return {
        "at": at.isoformat(),
        "attempt": attempt,
        "type": type,
        "message": message[:MESSAGE_CHARS].replace("\x00", "\\0"),
        "traceback": traceback[-TRACEBACK_TAIL_CHARS:].replace("\x00", "\\0")
        if traceback
        else None,
    }


def decide(
    *,
    attempt: int,
    max_attempts: int,
    outcome: Outcome,
    now: datetime,
    backoff: Backoff,
    rand: float | None = None,
) -> Change:
    """The transition out of `running` for the job's `attempt`-th run."""
    match outcome:
        case Success(result=result):
            return Change(state=JobState.SUCCEEDED, result=result)
        case Snoozed(after_s=after_s):
            return Change(
                state=JobState.QUEUED,
                run_after_s=_delay(after_s),
                extra_attempts=1,
                event=EventType.SNOOZED,
                event_data={"attempt": attempt},
            )
        case Release(reason=reason):
            return Change(
                state=JobState.QUEUED,
                run_after_s=0.0,
                extra_attempts=1,
                event=EventType.RELEASED,
                event_data={"attempt": attempt, "reason": reason},
            )
        case Cancelled(reason=reason):
            return Change(
                state=JobState.CANCELLED,
                event=EventType.CANCELLED,
                event_data={"attempt": attempt, "reason": reason},
            )
        case Failure(type=type_, message=message, traceback=tb, retryable=retryable):
            error = error_entry(at=now, attempt=attempt, type=type_, message=message, traceback=tb)
            return _failed(attempt, max_attempts, error, now, backoff, rand, retryable=retryable)
        case Timeout(timeout_s=timeout_s):
            error = error_entry(
                at=now, attempt=attempt, type="Timeout", message=f"ran longer than {timeout_s:g}s"
            )
            return _failed(attempt, max_attempts, error, now, backoff, rand)
        case LeaseExpired(owner=owner, expired_at=expired_at):
            error = error_entry(
                at=now,
                attempt=attempt,
                type="LeaseExpired",
                message=f"lease held by {owner} expired at {expired_at.isoformat()}",
            )
            return _failed(
                attempt, max_attempts, error, now, backoff, rand, lost_event=EventType.LEASE_LOST
            )
        case _:
            assert_never(outcome)


MAX_DELAY_S = 100 * 365.25 * 86400
"""The longest a requeue may wait: what an interval and a timestamp hold with room to spare."""


def _delay(after_s: float) -> float:
    """A requeue's wait in seconds; ValueError for one no clock can hold (NaN, infinity,
    past a century), which the worker turns into a permanent failure."""
    if not math.isfinite(after_s) or after_s > MAX_DELAY_S:
        raise ValueError(f"cannot run again after {after_s!r} s")
    return max(after_s, 0.0)


def _failed(
    attempt: int,
    max_attempts: int,
    error: dict[str, JSON],
    now: datetime,
    backoff: Backoff,
    rand: float | None,
    *,
    retryable: bool = True,
    lost_event: EventType = EventType.RETRY_SCHEDULED,
) -> Change:
    if retryable and attempt < max_attempts:
        return Change(
            state=JobState.QUEUED,
            run_after_s=_delay(backoff.delay_s(attempt, rand)),
            error=error,
            event=lost_event,
            event_data={"attempt": attempt, "error": error["type"]},
        )
    reason = "not retryable" if not retryable else "attempts exhausted"
    return Change(
        state=JobState.DEAD,
        error=error,
        event=EventType.DEAD,
        event_data={"attempt": attempt, "reason": reason, "error": error["type"]},
    )
