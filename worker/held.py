"""Every job a worker holds a lease on, in the order a job passes through it:

    buffer    claimed ahead, waiting for a free slot (the fetcher fills it)
    running   in a slot: loading, in its handler, or saving (the executor)
    outbox    finished, its change decided, not yet written (the completer empties it)

The heartbeat extends the leases of all three; on shutdown the buffer is released at once,
running jobs get their grace period, and the outbox is written.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from jobs.model import Claimed, Lease
from jobs.transitions import Change
from worker.registry import Kind


@dataclass(slots=True, eq=False)
class Running:
    job: Claimed
    kind: Kind | None
    task: asyncio.Task[None] | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    lost: bool = False
    started: bool = False
    """Its task has begun: cancelling it now runs the task's own clean-up. (A task cancelled
    before its first step never enters its body, so `stop` only flags an unstarted one.)"""
    in_thread_or_child: bool = False
    """Its handler runs in the pool or a thread: stopped by the cancel event, not the task."""


@dataclass(slots=True)
class Finished:
    """An outcome in the outbox: the change to write, for which job, how long it ran (s;
    None: it never started, a buffered job handed back or cancelled before its turn)."""

    change: Change
    job: Claimed
    ran_s: float | None


class Held:
    def __init__(self) -> None:
        self.buffer: deque[Claimed] = deque()
        self.buffered_at: dict[Lease, float] = {}
        """When each buffered job was claimed (time.monotonic)."""
        self.running: dict[Lease, Running] = {}
        self.outbox: dict[Lease, Finished] = {}

    def leases(self) -> list[Lease]:
        return [*(job.lease for job in self.buffer), *self.running, *self.outbox]

    def buffer_jobs(self, jobs: list[Claimed]) -> None:
        at = time.monotonic()
        self.buffer.extend(jobs)
        for job in jobs:
            self.buffered_at[job.lease] = at

    def next_buffered(self) -> Claimed:
        job = self.buffer.popleft()
        del self.buffered_at[job.lease]
        return job

    def take_buffered(self, lease: Lease) -> Claimed | None:
        """Remove a buffered job (its lease was lost, or it was cancelled before it ran)."""
        if lease not in self.buffered_at:
            return None
        for job in self.buffer:
            if job.lease == lease:
                self.buffer.remove(job)
                del self.buffered_at[lease]
                return job
        return None

    def stale(self, claimed_before: float) -> list[Claimed]:
        """Remove and return the buffered jobs claimed before `claimed_before` (monotonic)."""
        old: list[Claimed] = []
        while self.buffer and self.buffered_at[self.buffer[0].lease] < claimed_before:
            old.append(self.next_buffered())
        return old
