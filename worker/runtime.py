"""The worker process: small named services around one set of held jobs.

  fetcher    waits for a NOTIFY or a jittered poll, claims up to the free slots
  executor   one task per job: async handlers on the loop, CPU-bound ones in the pool
  completer  buffers outcomes for a few ms and writes them with one fenced statement
  heartbeat  every lease/3: extends every held lease at once; stops lost or cancelled jobs
  reaper     every few seconds: returns expired leases (any worker may; SKIP LOCKED)
  listener   one connection outside the pool, LISTENing for new jobs
  progress   writes the latest progress of each job every few hundred ms
  scheduler  enqueues cron fires (scheduler/loop.py); every worker runs one, none duplicates

If a service fails the worker logs `worker.service_failed` and stops, so the platform
restarts it, rather than limping on. Database outages are not failures: every loop waits
and retries, and outcomes stay buffered until they are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import socket
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from jobs.db import TRANSIENT_ERRORS, asyncpg_dsn
from jobs.handler import Cancel as CancelJob
from jobs.handler import Permanent, Retry
from jobs.logging import get_logger
from jobs.metrics import Tally, outcome_label
from jobs.model import Claimed, JobState, Lease
from jobs.sql import NOTIFY_CHANNEL
from jobs.store import Store
from jobs.transitions import (
    Cancel,
    Change,
    Failure,
    Outcome,
    Release,
    Snooze,
    Success,
    Timeout,
    decide,
)
from scheduler.loop import Scheduler
from worker.context import LoopContext
from worker.pool import ProcessPool
from worker.registry import Kind, Registry
from worker.settings import WorkerSettings

log = get_logger("worker")

OUTCOME_EVENTS = {
    JobState.SUCCEEDED: "job.succeeded",
    JobState.QUEUED: "job.retrying",
    JobState.DEAD: "job.dead",
    JobState.CANCELLED: "job.cancelled",
}


@dataclass
class _Running:
    job: Claimed
    task: asyncio.Task[None] | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_requested: bool = False
    lost: bool = False
    releasing: bool = False


class Worker:
    def __init__(
        self, store: Store, database_url: str, registry: Registry, settings: WorkerSettings
    ) -> None:
        self.store = store
        self.dsn = asyncpg_dsn(database_url)
        self.registry = registry
        self.settings = settings
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: dict[Lease, _Running] = {}
        self._outbox: dict[Lease, tuple[Change, Claimed, float]] = {}
        """Decided outcomes not yet written, with how long each job ran (s)."""
        self._tally = Tally()
        self._progress: dict[Lease, tuple[int, str | None]] = {}
        self._wake = asyncio.Event()
        self._flush = asyncio.Event()
        self._stopping = asyncio.Event()
        self._pool: ProcessPool | None = None
        self._signals = 0

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop claiming and shut down gracefully. Second: exit at once (the
        leases then expire and other workers' reapers recover the jobs)."""
        self._signals += 1
        if self._signals > 1:
            log.warning("worker.killed", worker_id=self.id, running=len(self._running))
            if self._pool:
                self._pool.kill_all()
            os._exit(1)
        log.info("worker.stopping", worker_id=self.id, running=len(self._running))
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        s = self.settings
        await self._retrying(
            "register",
            lambda: self.store.register_worker(
                self.id, socket.gethostname(), os.getpid(), s.queues, s.concurrency
            ),
        )
        if s.processes and any(k.cpu_bound for k in self.registry):
            self._pool = ProcessPool(s.processes, s.cancel_grace_s)
            await self._pool.start()
        log.info(
            "worker.started",
            worker_id=self.id,
            queues=s.queues,
            concurrency=s.concurrency,
            processes=s.processes,
            lease_s=s.lease_s,
        )
        background = {
            asyncio.create_task(self._listen(), name="listener"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._reap(), name="reaper"),
            asyncio.create_task(self._write_progress(), name="progress"),
        }
        if s.cron:
            background.add(asyncio.create_task(Scheduler(self.store).run(), name="scheduler"))
        completer = asyncio.create_task(self._complete_loop(), name="completer")
        fetcher = asyncio.create_task(self._fetch(), name="fetcher")
        failed: BaseException | None = None
        watched = {*background, completer, fetcher}
        stop_wait = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({*watched, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stop_wait}:
            error = task.exception()
            if error is None and self._stopping.is_set():
                continue  # the fetcher saw the stop before we did: a clean exit
            failed = error or RuntimeError(f"service {task.get_name()} returned")
            log.error("worker.service_failed", service=task.get_name(), error=repr(failed))
        self._stopping.set()
        self._wake.set()
        stop_wait.cancel()
        # From here on, only wait on tasks: whatever they raised was logged above, and the
        # shutdown steps below must all run (release, flush, unregister).
        await asyncio.wait({fetcher}, timeout=10.0)
        await self._drain_running()
        self._flush.set()
        await asyncio.wait({completer}, timeout=max(s.grace_s, 10.0))
        completer.cancel()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._pool:
            await self._pool.close()
        await self._flush_stats()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.store.unregister_worker(self.id)
        log.info("worker.stopped", worker_id=self.id, unwritten=len(self._outbox))
        if failed is not None:
            raise failed

    async def _drain_running(self) -> None:
        """Let running jobs finish within the grace period, then release the rest."""
        tasks = [r.task for r in self._running.values() if r.task]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.grace_s)
        for entry in list(self._running.values()):
            entry.releasing = True
            entry.cancel.set()
            if entry.task:
                entry.task.cancel()
        left = [r.task for r in self._running.values() if r.task]
        if left:
            await asyncio.wait(left, timeout=self.settings.cancel_grace_s + 5)

    # -- fetcher and listener ---------------------------------------------------------------

    async def _fetch(self) -> None:
        s = self.settings
        turn = 0
        while not self._stopping.is_set():
            # Cleared before the claim, so a NOTIFY or a freed slot during it is not lost.
            self._wake.clear()
            # Outcomes not yet written still hold their slot: if the database falls behind,
            # the worker stops claiming instead of piling up unwritten results.
            free = s.concurrency - len(self._running) - len(self._outbox)
            claimed = 0
            if free > 0:
                queues = s.queues[turn % len(s.queues) :] + s.queues[: turn % len(s.queues)]
                turn += 1
                try:
                    jobs = await self.store.claim(queues, free, self.id, s.lease_s)
                except TRANSIENT_ERRORS as exc:
                    log.warning("worker.db_unavailable", service="fetcher", error=repr(exc))
                    await self._pause(1.0)
                    continue
                claimed = len(jobs)
                for job in jobs:
                    self._start(job)
            if claimed and claimed == free:
                continue  # there may be more: claim again as soon as slots free up
            poll = s.poll_interval_s * random.uniform(0.8, 1.2)  # noqa: S311 - spreading polls
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _listen(self) -> None:
        queues = set(self.settings.queues)

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload in queues:
                self._wake.set()

        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener(NOTIFY_CHANNEL, notified)
                self._wake.set()  # notifications sent while we were away are lost: look now
                while not self._stopping.is_set():
                    await conn.execute("SELECT 1")  # notices a dead connection
                    await self._pause(5.0)
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="listener", error=repr(exc))
                await self._pause(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    # -- executor ------------------------------------------------------------------------

    def _start(self, job: Claimed) -> None:
        entry = _Running(job)
        self._running[job.lease] = entry
        entry.task = asyncio.create_task(self._execute(entry), name=f"job-{job.id}")
        log.info("job.claimed", job_id=job.id, kind=job.kind, attempt=job.attempt)

    async def _execute(self, entry: _Running) -> None:
        job = entry.job
        outcome: Outcome | None
        started = time.monotonic()
        try:
            outcome = _checked(await self._outcome_of(entry))
        except asyncio.CancelledError:
            outcome = self._interrupted(entry)
        except Exception as exc:  # the runtime's own failure around this job: record it
            outcome = Failure(type(exc).__name__, str(exc), traceback.format_exc())
        finally:
            self._running.pop(job.lease, None)
            self._wake.set()  # a slot is free
        if entry.lost or outcome is None:
            log.warning("job.lease_lost", job_id=job.id, attempt=job.attempt, kind=job.kind)
            return
        change = decide(
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            outcome=outcome,
            now=datetime.now(UTC),
            backoff=self.store.settings.backoff(),
        )
        self._outbox[job.lease] = (change, job, time.monotonic() - started)
        self._flush.set()

    def _interrupted(self, entry: _Running) -> Outcome | None:
        """The task was cancelled: say why, as an outcome (None: drop it)."""
        if entry.lost:
            return None
        if entry.cancel_requested:
            return Cancel("cancel requested")
        return Release()

    async def _outcome_of(self, entry: _Running) -> Outcome:
        job = entry.job
        kind = self.registry.get(job.kind)
        if kind is None:
            known = ", ".join(k.name for k in self.registry)
            return Failure(
                "UnknownKind",
                f"no handler is registered for kind {job.kind!r} (known: {known})",
                retryable=False,
            )
        try:
            payload = kind.payload.model_validate(job.payload)
        except ValidationError as exc:
            return Failure("InvalidPayload", str(exc), retryable=False)
        # The job's timeout covers all of it: loading, the handler, and storing.
        timeout = job.timeout_s or kind.timeout_s
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        try:
            inputs = None
            if kind.load is not None:
                inputs = await asyncio.wait_for(kind.load(self.store.pool, job, payload), left())
        except TimeoutError:
            return Timeout(timeout or 0)
        except Exception as exc:
            return _raised(exc)
        outcome = await self._handle(entry, kind, payload, inputs, left(), timeout)
        if kind.save is None or not isinstance(outcome, Success) or entry.lost:
            return outcome  # a lost job's outcome is dropped: another worker may be saving
        if entry.cancel_requested:
            return Cancel("cancel requested before the results were stored")
        try:
            saving = kind.save(self.store.pool, job, payload, outcome.result)
            return Success(await asyncio.wait_for(saving, left()))
        except TimeoutError:  # the save's transaction rolled back: nothing half-stored
            return Timeout(timeout or 0)
        except Exception as exc:
            return _raised(exc)

    async def _handle(
        self,
        entry: _Running,
        kind: Kind,
        payload: Any,
        inputs: Any,
        left_s: float | None,
        timeout: float | None,
    ) -> Outcome:
        """Run the handler within `left_s` of the job's `timeout`: in the pool, in a thread,
        or on the loop."""
        job = entry.job
        args = (payload,) if kind.load is None else (payload, inputs)
        budget = timeout if kind.load is None else left_s  # what loading has left of it

        def report(percent: int, message: str | None) -> None:
            self._progress[job.lease] = (percent, message)

        if kind.cpu_bound and self._pool is not None:
            outcome = await self._pool.run(
                job.id,
                job.kind,
                job.attempt,
                job.payload if kind.load is None else (job.payload, inputs),
                on_progress=report,
                cancel=entry.cancel,
                timeout_s=budget,
            )
            return Timeout(timeout or 0) if isinstance(outcome, Timeout) else outcome
        ctx = LoopContext(job.id, job.kind, job.attempt, report, entry.cancel)
        thread: asyncio.Future[Any] | None = None
        try:
            if kind.cpu_bound:
                # No pool (--processes 0): a thread, not the loop. A thread cannot be killed,
                # so stopping it is cooperative (ctx.cancelled()), and its slot stays taken
                # until it has returned: the job never runs twice at once on this worker.
                thread = asyncio.get_running_loop().run_in_executor(None, kind.handler, ctx, *args)
                return Success(await asyncio.wait_for(asyncio.shield(thread), budget))
            return Success(await asyncio.wait_for(kind.handler(ctx, *args), budget))
        except TimeoutError:
            entry.cancel.set()
            if thread is not None:
                with contextlib.suppress(Exception):
                    await thread
            return Timeout(timeout or 0)
        except Exception as exc:
            return _raised(exc)

    # -- completer -----------------------------------------------------------------------

    async def _complete_loop(self) -> None:
        s = self.settings
        while True:
            if not self._outbox:
                if self._stopping.is_set() and not self._running:
                    return
                self._flush.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush.wait(), 1.0)
                continue
            if len(self._outbox) < s.completer_batch and not self._stopping.is_set():
                await asyncio.sleep(s.completer_flush_ms / 1000)  # let a batch gather
            batch = list(itertools.islice(self._outbox.items(), s.completer_batch))
            try:
                applied = await self.store.finish_many(
                    [(lease, change) for lease, (change, _, _) in batch]
                )
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="completer", error=repr(exc))
                await asyncio.sleep(0.5)  # not _pause: that returns at once while stopping
                continue
            except asyncpg.PostgresError as exc:
                # One outcome the database refuses must not take the batch down with it.
                log.error("worker.batch_refused", error=repr(exc), outcomes=len(batch))
                applied = await self._finish_one_by_one(batch)
            self._wake.set()  # slots are free again
            for lease, (change, job, ran_s) in batch:
                del self._outbox[lease]
                state = applied.get(lease)
                if state is not None:
                    outcome = outcome_label(state, change.event)
                    self._tally.record(job.queue, job.kind, outcome, ran_s)
                    log.info(
                        OUTCOME_EVENTS[state],
                        job_id=job.id,
                        kind=job.kind,
                        attempt=job.attempt,
                        **({"error": change.error["type"]} if change.error else {}),
                    )

    async def _finish_one_by_one(
        self, batch: list[tuple[Lease, tuple[Change, Claimed, float]]]
    ) -> dict[Lease, JobState]:
        applied: dict[Lease, JobState] = {}
        for lease, (change, job, _) in batch:
            try:
                applied.update(await self.store.finish_many([(lease, change)]))
            except asyncpg.PostgresError as exc:
                # Left running: its lease expires and the reaper records the failed attempt.
                log.error("job.outcome_refused", job_id=job.id, kind=job.kind, error=repr(exc))
        return applied

    # -- heartbeat, reaper, progress -----------------------------------------------------

    async def _heartbeat(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.heartbeat_s)
            leases = [*self._running, *self._outbox]
            try:
                status = await self.store.extend_leases(self.id, leases, s.lease_s)
                if not await self.store.worker_heartbeat(self.id):
                    await self.store.register_worker(
                        self.id, socket.gethostname(), os.getpid(), s.queues, s.concurrency
                    )
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="heartbeat", error=repr(exc))
                continue
            await self._flush_stats()
            for lease in status.lost(leases):
                entry = self._running.get(lease)
                if entry and not entry.lost:
                    entry.lost = True
                    self._stop_job(entry)
            for lease in status.cancel_requested:
                entry = self._running.get(lease)
                if entry and not entry.cancel_requested:
                    entry.cancel_requested = True
                    log.info("job.cancel_requested", job_id=lease.job_id)
                    self._stop_job(entry)

    def _stop_job(self, entry: _Running) -> None:
        entry.cancel.set()  # seen by the pool and by handlers polling ctx.cancelled()
        kind = self.registry.get(entry.job.kind)
        if entry.task and not (kind and kind.cpu_bound):  # CPU-bound: the event stops it
            entry.task.cancel()

    async def _reap(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.reap_interval_s * random.uniform(0.5, 1.5))  # noqa: S311
            try:
                for r in await self.store.reap():
                    self._tally.record(r.queue, r.kind, r.outcome, None)
                await self.store.prune_workers(max(3 * s.lease_s, 60.0))
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="reaper", error=repr(exc))

    async def _write_progress(self) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_flush_ms / 1000)
            pending, self._progress = self._progress, {}
            for lease, (percent, message) in pending.items():
                try:
                    await self.store.report_progress(lease, percent, message)
                except TRANSIENT_ERRORS:
                    self._progress.setdefault(lease, (percent, message))

    async def _flush_stats(self) -> None:
        counts = self._tally.take()
        try:
            await self.store.add_stats(counts)
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
            self._tally.put_back(counts)  # counted on the next flush
            log.warning("worker.stats_unwritten", error=repr(exc))

    # -- helpers ---------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake early when the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _retrying(self, what: str, call: Any) -> None:
        delay = 0.5
        while True:
            try:
                await call()
                return
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service=what, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def _raised(exc: Exception) -> Outcome:
    """What a handler (or a kind's load or save) raising `exc` means for its job."""
    if isinstance(exc, Retry):
        return Snooze(exc.after_s)
    if isinstance(exc, CancelJob):
        return Cancel(exc.reason)
    return Failure(
        type(exc).__name__,
        str(exc),
        traceback.format_exc(),
        retryable=not isinstance(exc, Permanent),
    )


def _checked(outcome: Outcome) -> Outcome:
    """A result Postgres' jsonb cannot hold (NaN, a NUL character, a datetime) would make the
    whole batch's write fail: turn it into a permanent failure of this job instead."""
    if isinstance(outcome, Success):
        try:
            text = json.dumps(outcome.result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return Failure(
                "UnserializableResult", f"the handler's result is not JSON: {exc}", retryable=False
            )
        if "\\u0000" in text:
            return Failure(
                "UnserializableResult",
                "the handler's result contains a NUL "
                "character, which PostgreSQL's jsonb cannot store",
                retryable=False,
            )
    return outcome
