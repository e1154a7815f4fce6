"""The executor: `concurrency` slots, each running one job at a time from the buffer.

A job in a slot is loaded (a kind's `load`), handled, and saved (its `save`), all within the
job's timeout. Async handlers run on the loop, CPU-bound ones in the process pool (or, with
no pool, in a thread), so the loop — and the heartbeat — is never starved. A slot is free
the moment its job's outcome is in the outbox: it takes the next buffered job at once, and
only a full outbox (the database behind) makes it wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jobs.backoff import Backoff
from jobs.logging import get_logger
from jobs.model import Claimed, Lease
from jobs.store import Store
from jobs.transitions import Cancelled, Change, Failure, Outcome, Release, Success, Timeout, decide
from worker import outcomes
from worker.context import LoopContext
from worker.held import Finished, Held, Running
from worker.pool import ProcessPool
from worker.registry import Kind, Registry
from worker.settings import WorkerSettings

log = get_logger(__name__)


def decided(job: Claimed, outcome: Outcome, now: datetime, backoff: Backoff) -> Change:
    """`decide`, and a permanent failure instead should the outcome itself be impossible to
    apply (a handler's `Snooze(after_s=inf)` has no run time): a job is never left running
    because its outcome could not be turned into a change."""
    try:
        return decide(
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            outcome=outcome,
            now=now,
            backoff=backoff,
        )
    except (ArithmeticError, ValueError, TypeError) as exc:
        return decide(
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            outcome=Failure(
                "UndecidableOutcome",
                f"the job's outcome {outcome!r} could not be applied: {exc}",
                retryable=False,
            ),
            now=now,
            backoff=backoff,
        )


class Executor:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: WorkerSettings,
        held: Held,
        pool: ProcessPool | None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.held = held
        self.pool = pool
        self.backoff = store.settings.backoff()
        self.progress: dict[Lease, tuple[int, str | None]] = {}
        """The latest progress report of each running job, for the progress writer."""
        self.outbox_room = asyncio.Event()
        self.outbox_room.set()
        self.finished = asyncio.Event()
        """Set whenever an outcome goes into the outbox (the completer waits on it)."""
        self.on_room: Callable[[], None] = lambda: None  # the fetcher's `room`
        self.on_job_took: Callable[[float], None] = lambda seconds: None  # its `job_took`
        self.releasing = False
        self._handlers: dict[str, tuple[Any, bool]] = {}

    # -- slots -----------------------------------------------------------------------------

    def start_more(self) -> None:
        """Fill free slots from the buffer."""
        held, concurrency = self.held, self.settings.concurrency
        while held.buffer and len(held.running) < concurrency:
            job = held.next_buffered()
            entry = Running(job, self.registry.get(job.kind))
            held.running[job.lease] = entry
            entry.task = asyncio.create_task(self._run(entry))
        self.on_room()

    async def _run(self, entry: Running) -> None:
        entry.started = True
        job = entry.job
        started = time.perf_counter()
        outcome: Outcome | None
        try:
            if entry.lost or entry.cancel_requested or self.releasing:
                outcome = self._interrupted(entry)  # stopped before it began
            else:
                outcome = outcomes.checked(await self._attempt(entry))
        except asyncio.CancelledError:
            outcome = self._interrupted(entry)
        except Exception as exc:  # the runtime's own failure around this job: record it
            outcome = outcomes.raised(exc)
        try:
            ran_s = time.perf_counter() - started
            self.on_job_took(ran_s)
            if entry.lost or outcome is None:
                log.warning("job.lease_lost", job_id=job.id, attempt=job.attempt, kind=job.kind)
            else:
                if len(self.held.outbox) >= self.settings.outbox:
                    # The database is behind: this slot waits, which is the backpressure.
                    self.outbox_room.clear()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self.outbox_room.wait()
                self.put(job, outcome, ran_s)
        finally:
            self.held.running.pop(job.lease, None)
            self.progress.pop(job.lease, None)
            if not self.releasing:
                self.start_more()

    def put(self, job: Claimed, outcome: Outcome, ran_s: float | None = None) -> None:
        """Decide the change for `outcome` and leave it in the outbox (`ran_s` None: the job
        never started)."""
        change = decided(job, outcome, datetime.now(UTC), self.backoff)
        self.held.outbox[job.lease] = Finished(change, job, ran_s)
        self.finished.set()

    def _interrupted(self, entry: Running) -> Outcome | None:
        """The task was cancelled: say why, as an outcome (None: drop it)."""
        if entry.lost:
            return None
        if entry.cancel_requested:
            return Cancelled("cancel requested")
        return Release()

    def stop(self, entry: Running) -> None:
        """Stop a running job (its cancel was requested, or its lease lost: the caller has
        set which)."""
        entry.cancel.set()  # seen by the pool and by handlers polling ctx.cancelled()
        if entry.task and entry.started and not entry.in_thread_or_child:
            entry.task.cancel()  # in the pool or a thread the event stops it

    async def release_all(self, grace_s: float) -> None:
        """Shutdown: buffered jobs go back at once; running ones get `grace_s` to finish,
        then are stopped and released. No attempt is used up by a release."""
        while self.held.buffer:
            self.put(self.held.next_buffered(), Release())
        tasks = [r.task for r in self.held.running.values() if r.task]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        self.releasing = True  # a task that has not begun yet releases its job at once
        for entry in list(self.held.running.values()):
            entry.cancel.set()
            if entry.task and entry.started:
                entry.task.cancel()
        left = [r.task for r in self.held.running.values() if r.task]
        if left:
            await asyncio.wait(left, timeout=self.settings.cancel_grace_s + 5)
        self.outbox_room.set()

    # -- one attempt -----------------------------------------------------------------------

    async def _attempt(self, entry: Running) -> Outcome:
        job, kind = entry.job, entry.kind
        if kind is None:
            return outcomes.unknown_kind(job.kind, [k.name for k in self.registry])
        try:
            payload = kind.payload.model_validate(job.payload)
        except ValidationError as exc:
            return outcomes.invalid_payload(str(exc))
        # The job's timeout covers all of it: loading, the handler, and storing.
        timeout = job.timeout_s or kind.timeout_s
        if not kind.has_load and not kind.has_save:
            return await self._handle(entry, kind, payload, None, timeout, timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        inputs = None
        if kind.has_load:
            load = kind.load
            assert load is not None
            try:
                inputs = await asyncio.wait_for(load(self.store.db, job, payload), left())
            except TimeoutError:
                return Timeout(timeout or 0)
            except Exception as exc:
                return outcomes.raised(exc)
        outcome = await self._handle(entry, kind, payload, inputs, left(), timeout)
        save = kind.save
        if save is None or not isinstance(outcome, Success) or entry.lost:
            return outcome  # a lost job's outcome is dropped: another worker may be saving
        if entry.cancel_requested:
            return Cancelled("cancel requested before the results were stored")
        try:
            result = await asyncio.wait_for(
                save(self.store.db, job, payload, outcome.result), left()
            )
        except TimeoutError:  # the save's transaction rolled back: nothing half-stored
            return Timeout(timeout or 0)
        except Exception as exc:
            return outcomes.raised(exc)
        return Success(result)

    def _callable(self, kind: Kind) -> tuple[Any, bool]:
        """The kind's handler (its module imported on first use) and whether it is
        CPU-bound, looked up once per kind rather than once per job."""
        found = self._handlers.get(kind.name)
        if found is None:
            found = self._handlers[kind.name] = (kind.handler, kind.cpu_bound)
        return found

    async def _handle(
        self,
        entry: Running,
        kind: Kind,
        payload: Any,
        inputs: Any,
        budget: float | None,
        timeout: float | None,
    ) -> Outcome:
        """Run the handler within `budget` seconds (what is left of the job's `timeout`):
        in the pool, in a thread, or on the loop."""
        job = entry.job
        handler, cpu_bound = self._callable(kind)
        entry.in_thread_or_child = cpu_bound
        args = (payload, inputs) if kind.has_load else (payload,)

        def report(percent: int, message: str | None) -> None:
            self.progress[job.lease] = (percent, message)

        if cpu_bound and self.pool is not None:
            outcome = await self.pool.run(
                job.id,
                job.kind,
                job.attempt,
                (job.payload, inputs) if kind.has_load else job.payload,
                on_progress=report,
                cancel=entry.cancel,
                timeout_s=budget,
            )
            return Timeout(timeout or 0) if isinstance(outcome, Timeout) else outcome
        ctx = LoopContext(job.id, job.kind, job.attempt, report, entry.cancel)
        thread: asyncio.Future[Any] | None = None
        try:
            if cpu_bound:
                # No pool (--processes 0): a thread, not the loop. A thread cannot be killed,
                # so stopping it is cooperative (ctx.cancelled()), and its slot stays taken
                # until it has returned: the job never runs twice at once on this worker.
                thread = asyncio.get_running_loop().run_in_executor(None, handler, ctx, *args)
                result = await asyncio.wait_for(asyncio.shield(thread), budget)
            elif budget is None:
                result = await handler(ctx, *args)
            else:
                result = await asyncio.wait_for(handler(ctx, *args), budget)
        except TimeoutError:
            entry.cancel.set()
            if thread is not None:
                with contextlib.suppress(Exception):
                    await thread
            return Timeout(timeout or 0)
        except Exception as exc:
            return outcomes.raised(exc)
        return Success(result)
