"""Conveyor's queue core: the job model, its transitions, and the statements on Postgres.

Imports nothing from the web or numeric stacks; every other package may import this one.
"""

from jobs.backoff import Backoff
from jobs.errors import ConveyorError, InvalidTransition, JobNotFound
from jobs.model import Enqueued, Job, JobEvent, JobState, Lease, NewJob
from jobs.store import CancelResult, LeaseStatus, Reaped, RetryFilter, Store
from jobs.transitions import (
    Cancelled,
    Change,
    Failure,
    LeaseExpired,
    Outcome,
    Release,
    Snoozed,
    Success,
    Timeout,
    decide,
)

__all__ = [
    "Backoff",
    "CancelResult",
    "Cancelled",
    "Change",
    "ConveyorError",
    "Enqueued",
    "Failure",
    "InvalidTransition",
    "Job",
    "JobEvent",
    "JobNotFound",
    "JobState",
    "Lease",
    "LeaseExpired",
    "LeaseStatus",
    "NewJob",
    "Outcome",
    "Reaped",
    "Release",
    "RetryFilter",
    "Snoozed",
    "Store",
    "Success",
    "Timeout",
    "decide",
]
