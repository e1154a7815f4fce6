"""The worker process: small named services around one set of held jobs (`worker.held`).

  fetcher    claims into a small buffer on NOTIFY, poll, or while there is more (fetcher.py)
  executor   `concurrency` slots; async handlers on the loop, CPU-bound ones in the pool
  completer  writes decided outcomes in batches, each row fenced on its lease
  heartbeat  every lease/3: extends every held lease at once; stops lost or cancelled jobs;
             flushes the tallies; once a minute, samples queue depth (sampler.py)
  reaper     every few seconds: returns expired leases (any worker may; SKIP LOCKED)
  rotator    a few times a second: empties a drained half of the claim table (TRUNCATE)
  listener   one connection outside the pool, LISTENing for new jobs
  progress   writes the latest progress of each job every few hundred ms
  scheduler  enqueues cron fires (scheduler/loop.py); every worker runs one, none duplicates

If a service fails the worker logs `worker.service_failed` and stops, so the platform
restarts it, rather than limping on. Database outages are not failures: every loop waits
and retries, and outcomes stay in the outbox until they are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import socket
import uuid
from collections.abc import Coroutine
from typing import Any

import asyncpg

from jobs.db import START_HINT, TRANSIENT_ERRORS, asyncpg_dsn, until_available
from jobs.logging import get_logger
from jobs.metrics import Tally
from jobs.settings import DatabaseSettings
from jobs.store import Store
from worker.completer import Completer, JobsDone
from worker.executor import Executor
from worker.fetcher import Fetcher
from worker.heartbeat import Heartbeat
from worker.held import Held
from worker.listener import Listener
from worker.pool import ProcessPool
from worker.progress import ProgressWriter
from worker.reaper import Reaper
from worker.registry import Registry
from worker.rotator import ReadyRotator
from worker.sampler import DepthSampler
from worker.settings import WorkerSettings

log = get_logger(__name__)


class Worker:
    def __init__(
        self,
        store: Store,
        listen_url: str | None,
        registry: Registry,
        settings: WorkerSettings,
    ) -> None:
        """`listen_url`: where the listener LISTENs for new jobs (Postgres itself); None
        behind a transaction pooler with no direct URL, and the fetcher polls."""
        self.store = store
        self.dsn = asyncpg_dsn(listen_url) if listen_url else None
        self.registry = registry
        self.settings = settings
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held = Held()
        self._tally = Tally()
        self._done = JobsDone()
        self._stopping = asyncio.Event()
        self._drained = asyncio.Event()
        """Set once nothing can reach the outbox any more: the completer may then finish."""
        # Children start when the first CPU-bound job needs one, not before.
        self._pool = (
            ProcessPool(settings.processes, settings.cancel_grace_s, app=settings.app)
            if settings.processes
            else None
        )
        self.executor = Executor(store, registry, settings, self.held, self._pool)
        self.fetcher = Fetcher(
            store, self.id, settings, self.held, self.executor.start_more, self._stopping
        )
        self.executor.on_room = self.fetcher.room
        self.executor.on_job_took = self.fetcher.job_took
        self.completer = Completer(
            store,
            settings,
            self.held,
            self._tally,
            self.executor.finished,
            self.executor.outbox_room,
            self._drained,
            self._done,
        )
        self.completer.on_written = self.fetcher.room
        self._signals = 0

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop claiming and shut down gracefully. Second: exit at once (the
        leases then expire and other workers' reapers recover the jobs)."""
        self._signals += 1
        if self._signals > 1:
            log.warning("worker.killed", worker_id=self.id, running=len(self.held.running))
            if self._pool:
                self._pool.kill_all()
            os._exit(1)
        log.info("worker.stopping", worker_id=self.id, running=len(self.held.running))
        self._stopping.set()
        self.fetcher.stop()

    async def run(self) -> None:
        s = self.settings
        await until_available(self._register, "worker.db_unavailable", service="register")
        log.info(
            "worker.started",
            worker_id=self.id,
            queues=s.queues,
            concurrency=s.concurrency,
            processes=s.processes,
            lease_s=s.lease_s,
        )
        fetcher = asyncio.create_task(self.fetcher.run(), name="fetcher")
        completer = asyncio.create_task(self.completer.run(), name="completer")
        services: dict[str, Coroutine[Any, Any, None]] = {
            "heartbeat": Heartbeat(
                self.store,
                self.id,
                s,
                self.held,
                self.executor,
                self._flush_stats,
                self._register,
                self._done,
                DepthSampler(self.store).tick,
            ).run(),
            "reaper": Reaper(self.store, s, self._tally).run(),
            "rotator": ReadyRotator(self.store).run(),
            "progress": ProgressWriter(
                self.store, self.executor.progress, s.progress_flush_ms
            ).run(),
        }
        if self.dsn is not None:
            services["listener"] = Listener(
                self.dsn, s.queues, self.fetcher.notified, self._stopping
            ).run()
        else:
            log.warning(
                "worker.listen_off",
                reason="DB_POOLER=transaction without DATABASE_DIRECT_URL: new jobs are "
                "found by polling",
                poll_interval_s=s.poll_interval_s,
            )
        if s.cron:
            services["scheduler"] = self._scheduler()
        background = {asyncio.create_task(c, name=name) for name, c in services.items()}
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
        self.fetcher.stop()
        stop_wait.cancel()
        # From here on, only wait on tasks: whatever they raised was logged above, and the
        # shutdown steps below must all run (release, flush, unregister).
        await asyncio.wait({fetcher}, timeout=10.0)
        if not fetcher.done():  # a claim hung on the database: its jobs' leases will expire
            fetcher.cancel()
            await asyncio.gather(fetcher, return_exceptions=True)
        await self.executor.release_all(s.grace_s)
        self._drained.set()
        self.executor.finished.set()
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
        log.info("worker.stopped", worker_id=self.id, unwritten=len(self.held.outbox))
        if failed is not None:
            raise failed

    async def _scheduler(self) -> None:
        # Imported here: the cron maths (APScheduler) is not on the way to the first claim.
        from scheduler.loop import Scheduler

        await Scheduler(self.store).run()

    async def _register(self, jobs_done: int = 0) -> None:
        """The worker's row: where it runs, what it claims from, its version and its kinds
        (read from their handlers' source: registering imports no kind's module)."""
        s = self.settings
        await self.store.register_worker(
            self.id,
            socket.gethostname(),
            os.getpid(),
            s.queues,
            s.concurrency,
            version=installed_version(),
            kinds=self.registry.published(),
            jobs_done=jobs_done,
        )

    async def _flush_stats(self) -> None:
        counts = self._tally.take()
        try:
            await self.store.add_stats(counts)
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
            self._tally.put_back(counts)  # counted on the next flush
            log.warning("worker.stats_unwritten", error=repr(exc))
        minutes = self._tally.take_minutes()
        try:
            await self.store.add_minutes(minutes)
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
            self._tally.put_back_minutes(minutes)  # each added to its own minute next time
            log.warning("worker.stats_unwritten", table="job_minute", error=repr(exc))


def installed_version() -> str:
    """The installed Conveyor's version ("" when it runs from a tree that is not installed)."""
    try:
        return importlib.metadata.version("conveyor")
    except importlib.metadata.PackageNotFoundError:
        return ""


def run_worker(database_url: str, registry: Registry, settings: WorkerSettings) -> None:
    """`serve` on uvloop where it is installed (about a third less CPU per job than the
    standard loop, most of it in socket writes), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop
        asyncio.run(serve(database_url, registry, settings))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(database_url, registry, settings))


async def serve(database_url: str, registry: Registry, settings: WorkerSettings) -> None:
    """Run one worker until SIGTERM/SIGINT: `conveyor worker`'s whole process."""
    db = DatabaseSettings()
    db = db.model_copy(update={"db_pool_max": max(db.db_pool_max, 4)})
    # A worker started before its database (a compose file, a deploy that brings both up, a
    # restart during an outage) waits for it, as it waits out an outage later on.
    store = await until_available(
        lambda: Store.connect(database_url, db=db),
        "worker.db_unavailable",
        service="connect",
        hint=START_HINT,
    )
    try:
        worker = Worker(store, db.session_url(database_url), registry, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.request_stop)
        await worker.run()
    finally:
        await store.close()
