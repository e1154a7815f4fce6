"""Every job a worker holds a lease on, in the order a job passes through it:

    buffer    claimed ahead, waiting for a free slot (the fetcher fills it)
    running   in a slot: loading, in its handler, or saving (the executor)
    outbox    finished, its change decided, not yet written (the completer empties it)

The heartbeat extends the leases of all three; on shutdown the buffer is released at once,
running jobs get their grace period, and the outbox is written.
"""

from __future__ import annotations

import asyncio
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


@dataclass(slots=True)
class Finished:
    """An outcome in the outbox: the change to write, for which job, how long it ran (s)."""

    change: Change
    job: Claimed
    ran_s: float


class Held:
    def __init__(self) -> None:
        self.buffer: deque[Claimed] = deque()
        self.running: dict[Lease, Running] = {}
        self.outbox: dict[Lease, Finished] = {}

    def leases(self) -> list[Lease]:
        return [*(job.lease for job in self.buffer), *self.running, *self.outbox]

    def take_buffered(self, lease: Lease) -> Claimed | None:
        """Remove a buffered job (its lease was lost, or it was cancelled before it ran)."""
        for job in self.buffer:
            if job.lease == lease:
                self.buffer.remove(job)
                return job
        return None

    def __len__(self) -> int:
        return len(self.buffer) + len(self.running) + len(self.outbox)
