"""The fetcher: claims jobs into the buffer, so a slot that frees up starts its next job
without waiting on a round trip.

How much it claims: every free slot, plus jobs ahead (`claim_ahead`) — as many as the slots
use up during one claim's round trip, up to `prefetch`. Short jobs keep a full buffer (and
claims of a few hundred rows, which is what makes them cheap: a statement costs about the
same for 10 rows as for 200); jobs that take much longer than a round trip get none, so a
worker busy with long jobs never sits on queued work another worker could start. Should the
guess be wrong (slots suddenly stuck on long jobs), the heartbeat hands back whatever waited
in the buffer for a whole heartbeat.

When it claims: at once while the last claim came back full (there is more), and otherwise
on a NOTIFY for one of its queues, the jittered poll, or as soon as a rate limit that held
jobs back lets the next one start (the claim says when). One claim is in flight at a time, so
a claim takes everything that freed up while the previous one ran: under load claims grow,
idle they cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import enabled as logging_enabled
from jobs.logging import get_logger
from jobs.model import Claimed
from jobs.store import Store
from worker.held import Held
from worker.settings import WorkerSettings

log = get_logger(__name__)

SMOOTHING = 0.2
"""Weight of the newest sample in the running averages of claim and job durations."""

RATE_MARGIN_S = 0.005
"""After a rate's window opens, how long to wait before claiming: a little, so the start that
left the window has surely left it by the database's clock too."""


def claim_ahead(prefetch: int, concurrency: int, job_s: float | None, claim_s: float) -> int:
    """How many jobs to hold beyond the free slots: what `concurrency` slots finish during
    one claim of `claim_s`, when a job takes `job_s` on average; at most `prefetch`. None
    yet (no job finished): claim only for the free slots."""
    if job_s is None or prefetch <= 0:
        return 0
    if job_s <= 0:
        return prefetch
    return min(prefetch, math.floor(concurrency * claim_s / job_s))


class Fetcher:
    def __init__(
        self,
        store: Store,
        worker_id: str,
        settings: WorkerSettings,
        held: Held,
        started: Callable[[], None],
        stopping: asyncio.Event,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.settings = settings
        self.held = held
        self._started = started  # the executor: fill free slots from the buffer
        self._stopping = stopping
        self._changed = asyncio.Event()
        self._notified = False
        self._more = True  # look at once on start
        self.job_s: float | None = None
        self.claim_s = 0.001
        self._per_job_lines = logging_enabled("info")

    # -- signals from the other services ---------------------------------------------------

    def notified(self) -> None:
        """A NOTIFY for one of our queues (or the listener reconnected: look now)."""
        self._notified = True
        self._changed.set()

    def room(self) -> None:
        """A slot or buffer place freed up: worth a claim while there may be more, or when a
        NOTIFY came while every slot was busy."""
        if self._more or self._notified:
            self._changed.set()

    def stop(self) -> None:
        self._changed.set()

    def job_took(self, seconds: float) -> None:
        self.job_s = (
            seconds if self.job_s is None else self.job_s + SMOOTHING * (seconds - self.job_s)
        )

    # -- the loop --------------------------------------------------------------------------

    def wanted(self) -> int:
        s, held = self.settings, self.held
        if len(held.outbox) >= s.outbox:
            return 0  # the database is behind: finish what we hold before taking more
        ahead = claim_ahead(s.prefetch, s.concurrency, self.job_s, self.claim_s)
        return s.concurrency + ahead - len(held.running) - len(held.buffer)

    async def run(self) -> None:
        s = self.settings
        turn = 0
        rate_opens: float | None = None
        while not self._stopping.is_set():
            # Cleared before the claim, so a NOTIFY or a freed slot during it is not lost.
            self._changed.clear()
            want = self.wanted()
            if want > 0 and (self._more or self._notified):
                self._notified = False
                queues = s.queues[turn % len(s.queues) :] + s.queues[: turn % len(s.queues)]
                turn += 1
                t = time.perf_counter()
                try:
                    jobs = await self.store.claim(queues, want, self.worker_id, s.lease_s)
                except TRANSIENT_ERRORS as exc:
                    log.warning("worker.db_unavailable", service="fetcher", error=repr(exc))
                    self._more = True
                    await self._pause(1.0)
                    continue
                self.claim_s += SMOOTHING * (time.perf_counter() - t - self.claim_s)
                self._more = len(jobs) == want
                rate_opens = jobs.opens_in_s
                if jobs:
                    self._take(jobs)
                continue
            poll = s.poll_interval_s * random.uniform(0.8, 1.2)  # noqa: S311 - spreading polls
            if rate_opens is not None:
                # a rate held jobs back: look again as its window lets the next one start
                poll = min(poll, max(rate_opens, 0.0) + RATE_MARGIN_S)
                rate_opens = None
            try:
                await asyncio.wait_for(self._changed.wait(), poll)
            except TimeoutError:
                self._more = True  # jobs whose run_at came due send no NOTIFY

    def _take(self, jobs: list[Claimed]) -> None:
        self.held.buffer_jobs(jobs)
        if self._stopping.is_set():
            return  # claimed as the stop came: the shutdown releases the buffer unstarted
        if self._per_job_lines:
            for job in jobs:
                log.info("job.claimed", job_id=job.id, kind=job.kind, attempt=job.attempt)
        self._started()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
