"""The completer: writes the outbox's decided changes in batches, each row fenced on its
lease (`Store.finish_many`), one write in flight at a time.

It writes as soon as there is something to write; outcomes that arrive meanwhile wait for
the next batch, so batches grow with the load on their own and a lone job is written at
once. A database outage is not a failure: outcomes stay in the outbox (their leases still
heartbeated) until they can be written. One outcome the database refuses is written alone,
so it cannot take its batch down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import enabled as logging_enabled
from jobs.logging import get_logger
from jobs.metrics import Tally, outcome_label, waited_s
from jobs.model import JobState, Lease
from jobs.store import Store
from worker.held import Finished, Held
from worker.settings import WorkerSettings

log = get_logger(__name__)

OUTCOME_EVENTS = {
    JobState.SUCCEEDED: "job.succeeded",
    JobState.QUEUED: "job.retrying",
    JobState.DEAD: "job.dead",
    JobState.CANCELLED: "job.cancelled",
}


@dataclass
class JobsDone:
    """Jobs this worker finished (succeeded, dead or cancelled) that its row does not count
    yet: the completer adds them, the heartbeat writes them (`worker.jobs_done`) and puts
    back what it could not write."""

    count: int = 0

    def take(self) -> int:
        taken, self.count = self.count, 0
        return taken

    def put_back(self, count: int) -> None:
        self.count += count


class Completer:
    def __init__(
        self,
        store: Store,
        settings: WorkerSettings,
        held: Held,
        tally: Tally,
        finished: asyncio.Event,
        room: asyncio.Event,
        drained: asyncio.Event,
        done: JobsDone | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.held = held
        self.tally = tally
        self.done = done if done is not None else JobsDone()
        self._finished = finished  # set by the executor when it adds to the outbox
        self._room = room  # set here when the outbox has room again
        self._drained = drained  # set by the shutdown once nothing more can be put
        self.on_written: Callable[[], None] = lambda: None
        """Called after each write (the fetcher's `room`: it stops claiming while the outbox
        is full)."""

    async def run(self) -> None:
        """Until the shutdown has drained the worker and nothing is left to write (the
        runner cancels it after the shutdown's time is up)."""
        s, outbox = self.settings, self.held.outbox
        per_job_lines = logging_enabled("info")
        while True:
            if not outbox:
                if self._drained.is_set():
                    return
                self._finished.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), 1.0)
                continue
            if (
                s.completer_flush_ms
                and len(outbox) < s.completer_batch
                and not self._drained.is_set()
            ):
                await asyncio.sleep(s.completer_flush_ms / 1000)  # let a batch gather
            batch = list(itertools.islice(outbox.items(), s.completer_batch))
            try:
                applied = await self.store.finish_many([(lease, f.change) for lease, f in batch])
            except asyncpg.exceptions.DataError as exc:
                # asyncpg could not encode an argument (an InterfaceError, so it would pass for
                # transient): retrying the batch would fail forever and fill the outbox.
                log.error("worker.batch_refused", error=repr(exc), outcomes=len(batch))
                applied = await self._one_by_one(batch)
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="completer", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            except asyncpg.PostgresError as exc:
                log.error("worker.batch_refused", error=repr(exc), outcomes=len(batch))
                applied = await self._one_by_one(batch)
            for lease, f in batch:
                del outbox[lease]
                state = applied.get(lease)
                if state is None:
                    continue  # the lease was lost: finish_many logged it
                self.tally.record(
                    f.job.queue,
                    f.job.kind,
                    outcome_label(state, f.change.event),
                    f.ran_s,
                    wait_s=None if f.ran_s is None else waited_s(f.job.run_at, f.job.started_at),
                )
                if state.is_terminal:
                    self.done.count += 1
                if per_job_lines:
                    log.info(
                        OUTCOME_EVENTS[state],
                        job_id=f.job.id,
                        kind=f.job.kind,
                        attempt=f.job.attempt,
                        **({"error": f.change.error["type"]} if f.change.error else {}),
                    )
            if len(outbox) < s.outbox:
                self._room.set()
            self.on_written()

    async def _one_by_one(self, batch: list[tuple[Lease, Finished]]) -> dict[Lease, JobState]:
        applied: dict[Lease, JobState] = {}
        for lease, f in batch:
            try:
                applied.update(await self.store.finish_many([(lease, f.change)]))
            except (asyncpg.PostgresError, asyncpg.exceptions.DataError) as exc:
                # Left running: its lease expires and the reaper records the failed attempt.
                log.error("job.outcome_refused", job_id=f.job.id, kind=f.job.kind, error=repr(exc))
        return applied
