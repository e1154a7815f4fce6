"""What a job handler sees: its context, and the exceptions that choose an outcome.

A handler is `async def handle(ctx, payload) -> result` (runs on the worker's event loop) or
`def handle(ctx, payload) -> result` registered as CPU-bound (runs in the worker's process
pool). Returning is success; raising `Snooze` snoozes, raising `Cancel` cancels, and any other
exception is a failed attempt (retried with backoff until the attempts run out).
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import structlog

from jobs.model import JSON


class JobContext(Protocol):
    """The handler's view of its job. The same interface in the loop and in a child process."""

    job_id: int
    kind: str
    attempt: int
    log: structlog.typing.FilteringBoundLogger

    def progress(self, percent: int, message: str | None = None) -> None:
        """Report progress (0–100). Cheap to call often: writes are coalesced."""

    def cancelled(self) -> bool:
        """True once a cancel was requested (or the lease lost): stop at the next chunk."""


class Snooze(Exception):
    """Run this job again after `after_s` seconds, without using up an attempt (the job is
    queued again and its outcome is `jobs.Snoozed`)."""

    def __init__(self, after_s: float = 0.0) -> None:
        super().__init__(f"snooze for {after_s:g}s")
        self.after_s = after_s


class Retry(Snooze):
    """The old name of `Snooze`, which says what it does (a retry uses an attempt; this does
    not). Still works, with a DeprecationWarning; it goes in a later release."""

    def __init__(self, after_s: float = 0.0) -> None:
        warnings.warn(
            "jobs.handler.Retry is now Snooze (it snoozes without using an attempt): raise"
            " Snooze(after_s=...) instead",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(after_s)


class Cancel(Exception):
    """Stop this job for good: it ends `cancelled`, not dead, and is not retried."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class Permanent(Exception):
    """A failure that retrying cannot fix: the job goes straight to dead."""


Handler = Any
"""`async def (ctx, payload) -> JSON` or, for CPU-bound kinds, `def (ctx, payload) -> JSON`."""

__all__ = ["JSON", "Cancel", "Handler", "JobContext", "Permanent", "Retry", "Snooze"]
