"""The heartbeat: every lease/3 seconds, one statement extends every lease this worker holds
(buffered, running and finished-but-unwritten jobs alike) and says which were lost and which
have a cancel request; it also keeps the worker's own row fresh, adds the jobs finished since
the last one to it (`worker.jobs_done`), flushes its tally and, once a minute, has queue
depth sampled (`worker.sampler`).

A lost job is stopped and its outcome dropped (another worker may be running it). A
cancelled one is stopped and ends `cancelled`. A buffered job that is either never starts, and
one that has waited in the buffer for a whole heartbeat is handed back (`Release`: no attempt
used) so that an idle worker can run it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.store import Store
from jobs.transitions import Cancelled, Release
from worker.completer import JobsDone
from worker.executor import Executor
from worker.held import Held
from worker.settings import WorkerSettings

log = get_logger(__name__)


class Heartbeat:
    def __init__(
        self,
        store: Store,
        worker_id: str,
        settings: WorkerSettings,
        held: Held,
        executor: Executor,
        flush_stats: Callable[[], Awaitable[None]],
        register: Callable[[int], Awaitable[None]],
        done: JobsDone,
        each_minute: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.settings = settings
        self.held = held
        self.executor = executor
        self._flush_stats = flush_stats
        self._register = register
        """Writes the worker's row again with the jobs done it is given (it was pruned)."""
        self.done = done
        self._each_minute = each_minute
        """Called after every flush; returns at once but once a minute (`DepthSampler`)."""

    async def run(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.heartbeat_s)
            leases = self.held.leases()
            done = self.done.take()
            try:
                status = await self.store.extend_leases(self.worker_id, leases, s.lease_s)
                if not await self.store.worker_heartbeat(self.worker_id, done):
                    await self._register(done)
            except TRANSIENT_ERRORS as exc:
                self.done.put_back(done)  # counted with the next heartbeat that is written
                log.warning("worker.db_unavailable", service="heartbeat", error=repr(exc))
                continue
            await self._flush_stats()
            if self._each_minute is not None:
                await self._each_minute()
            stale = self.held.stale(time.monotonic() - s.heartbeat_s)
            if stale:
                # The slots were busier than the claim-ahead guessed: let another worker run
                # these, and tell the guess, so this worker does not claim them straight back.
                self.executor.on_job_took(s.heartbeat_s)
            for old in stale:
                log.info("job.handed_back", job_id=old.id, kind=old.kind)
                self.executor.put(old, Release("not started within a heartbeat of its claim"))
            for lease in status.lost(leases):
                if (job := self.held.take_buffered(lease)) is not None:
                    log.warning("job.lease_lost", job_id=job.id, attempt=job.attempt, kind=job.kind)
                    continue
                entry = self.held.running.get(lease)
                if entry and not entry.lost:
                    entry.lost = True
                    self.executor.stop(entry)
            for lease in status.cancel_requested:
                if (job := self.held.take_buffered(lease)) is not None:
                    log.info("job.cancel_requested", job_id=lease.job_id)
                    self.executor.put(job, Cancelled("cancel requested"))
                    continue
                entry = self.held.running.get(lease)
                if entry and not entry.cancel_requested:
                    entry.cancel_requested = True
                    log.info("job.cancel_requested", job_id=lease.job_id)
                    self.executor.stop(entry)
