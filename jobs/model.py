"""What a job is: its states, the row as Python sees it, and what a caller submits."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple

JSON = Any
"""A value that survives json.dumps/json.loads unchanged."""

DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 0
DEFAULT_MAX_ATTEMPTS = 5
SYSTEM_OWNER = "system"
"""The owner of jobs nobody submitted through the API (cron, operators' scripts)."""


class JobState(enum.StrEnum):
    WAITING = "waiting"
    """For the jobs it depends on to succeed (`depends_on`); claimed only once queued."""
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


class BrowseState(enum.StrEnum):
    """What a listing filters by: a job's state, or one of two parts of `queued` that an
    operator asks after: `scheduled` (not due yet, and no attempt has failed) and `retrying`
    (an attempt failed; it waits for its backoff, or is due again)."""

    WAITING = "waiting"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RETRYING = "retrying"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    DEAD = "dead"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.CANCELLED, JobState.DEAD})
REPLAYABLE_STATES = frozenset({JobState.DEAD, JobState.CANCELLED})


class EventType(enum.StrEnum):
    """`job_event.type`: what the job row alone cannot tell."""

    RETRY_SCHEDULED = "retry_scheduled"
    SNOOZED = "snoozed"
    LEASE_LOST = "lease_lost"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    DEAD = "dead"
    RETRIED = "retried"
    PROGRESS = "progress"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue. It may run from `run_at`, or else `run_after_s` seconds after the
    database's clock at the insert, or else now (that clock too)."""

    kind: str
    payload: Mapping[str, JSON] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    run_at: datetime | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout_s: int | None = None
    idempotency_key: str | None = None
    owner: str = SYSTEM_OWNER
    run_after_s: float | None = None
    unique_key: str | None = None
    """While a job of this owner with this key is queued or running, this one is not added:
    the submission answers with that job (see `debounce_s`)."""
    debounce_s: float | None = None
    """With `unique_key`: a still-queued job with the key takes this one's payload and starts
    `debounce_s` after now (its start is pushed back each time); a new one starts then too."""


OPTIONAL_COLUMNS = ("unique_key",)
"""Columns a listing may leave out of its select (None then)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One row of `job`."""

    id: int
    queue: str
    kind: str
    payload: JSON
    state: JobState
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    timeout_s: int | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    progress: int
    progress_message: str | None
    result: JSON
    errors: list[dict[str, JSON]]
    idempotency_key: str | None
    owner: str
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    unique_key: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        values: dict[str, Any] = {
            name: row[name] for name in cls.__slots__ if name not in OPTIONAL_COLUMNS
        }
        values["state"] = JobState(values["state"])
        values.update({name: row.get(name) for name in OPTIONAL_COLUMNS})
        return cls(**values)


class Lease(NamedTuple):
    """What a worker holds after a claim: enough to fence every later write.

    A tuple, not a dataclass: a worker keys everything it holds by lease, and a tuple's hash
    and construction run in C (a frozen dataclass's were 4 % of a worker's CPU)."""

    job_id: int
    owner: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job as a worker receives it from `claim`: what running it needs, nothing more.

    Leaner than `Job` on purpose: the claim is the hot path, and decoding every column
    (errors, result) for every claimed row was a measurable share of a worker's CPU.
    """

    id: int
    queue: str
    kind: str
    payload: JSON
    priority: int
    attempt: int
    max_attempts: int
    timeout_s: int | None
    owner: str
    lease_owner: str
    lease_expires_at: datetime
    run_at: datetime
    created_at: datetime
    started_at: datetime
    lease: Lease = field(init=False, repr=False, compare=False)
    """Made once: a worker keys everything it holds by it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lease", Lease(self.id, self.lease_owner, self.attempt))


CLAIMED_COLUMNS = ", ".join(f.name for f in fields(Claimed) if f.init)
"""The claim's RETURNING list, in field order, so a row maps onto `Claimed(*row)`."""


class Keep(enum.Enum):
    """An operator's change leaves this field as it is (None would lift a limit)."""

    KEEP = "keep"


KEEP = Keep.KEEP


class Claims(list[Claimed]):
    """What one `claim` took, in claim order. `opens_in_s`: when a rate limit that held some
    of the jobs back lets its next one start, in seconds (None: no rate held any back), so a
    worker can look again then rather than at its next poll."""

    opens_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `allowed` of a kind's jobs start in any `period_s` seconds, over every worker:
    for the kind as a whole (`partition` None), per owner (`"owner"`), or per value of a
    top-level payload field (`"payload.provider"`). A job over it waits, queued."""

    allowed: int
    period_s: float
    partition: str | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The outcome of an enqueue: the job's id, and whether the key already named a job."""

    id: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: int
    at: datetime
    type: str
    data: JSON
