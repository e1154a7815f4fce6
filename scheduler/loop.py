"""The scheduler every worker runs: no leader, the database decides who enqueues.

Each pass reads the enabled schedules with the database's clock, works out what is due
(`scheduler.cron.due`) and enqueues each fire as a job with the idempotency key
`cron:<name>:<fire time, ISO-8601 UTC>`. Every worker does the same; the unique
(owner, idempotency_key) index turns all inserts but the first into no-ops, so a tick is
enqueued once however many workers run, and as long as one of them runs, none is lost.
Passes run when the next fire is due and at least every `reload_s`, which is also how soon
an edit made through the API takes effect.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.store import Store
from scheduler.cron import Cron, CronError, due
from scheduler.schedules import Schedule, follow_up
from scheduler.settings import SchedulerSettings
from stores.schedules import ScheduleStore

log = get_logger(__name__)


class Scheduler:
    def __init__(self, store: Store, settings: SchedulerSettings | None = None) -> None:
        self.store = store
        self.schedules = ScheduleStore(store.db)
        self.settings = settings or SchedulerSettings()
        self._parsed: dict[tuple[str, str], Cron | CronError] = {}

    async def run(self) -> None:
        """Pass after pass until cancelled; a database outage only delays passes."""
        while True:
            try:
                wait = await self.tick()
            except TRANSIENT_ERRORS as exc:
                log.warning("scheduler.db_unavailable", error=repr(exc))
                wait = 1.0
            await asyncio.sleep(wait)

    def _cron(self, schedule: Schedule) -> Cron | None:
        key = (schedule.cron, schedule.timezone)
        if key not in self._parsed:
            try:
                self._parsed[key] = Cron.parse(*key)
            except CronError as exc:
                self._parsed[key] = exc
                log.error("cron.invalid", schedule=schedule.name, error=str(exc))
        parsed = self._parsed[key]
        return parsed if isinstance(parsed, Cron) else None

    async def tick(self, now: datetime | None = None) -> float:
        """One pass over every enabled schedule; returns seconds until the next one. `now`
        is the database's clock unless a test hands one in (and moves it as fast as it
        likes: a minute of per-second fires in a fraction of a second)."""
        rows = await self.schedules.load_enabled()
        now = now or rows[0]["now"]
        assert now is not None
        wake = now + timedelta(seconds=self.settings.reload_s)
        for row in rows:
            if row["name"] is None:
                continue  # no schedules: the clock's row only
            schedule = Schedule.from_row(row)
            cron = self._cron(schedule)
            if cron is None:
                continue
            upcoming = cron.next_after(now)
            await self._fire(schedule, cron, now, upcoming)
            if upcoming is not None:
                wake = min(wake, upcoming)
        # A hair past the fire time, so the next pass finds it due.
        return max(0.01, (wake - now).total_seconds() + 0.005)

    async def _fire(
        self, schedule: Schedule, cron: Cron, now: datetime, upcoming: datetime | None
    ) -> None:
        d = due(
            cron,
            since=schedule.since,
            now=now,
            catch_up_s=schedule.catch_up_s,
            late_s=self.settings.late_s,
            backfill=schedule.backfill,
        )
        if d.enqueue:
            jobs = [schedule.job(schedule.idempotency_key(fire)) for fire in d.enqueue]
            for fire, enqueued in zip(d.enqueue, await self.store.enqueue_many(jobs), strict=True):
                if not enqueued.duplicate:
                    log.info(
                        "cron.fired",
                        schedule=schedule.name,
                        fire_at=fire.isoformat(),
                        job_id=enqueued.id,
                    )
                # before the fire is recorded (advance), so a worker that dies here leaves
                # the chain to the next one, which finds the same keys
                await follow_up(self.store, schedule, schedule.idempotency_key(fire), enqueued.id)
        if d.last_fire is None and upcoming == schedule.next_fire_at:
            return  # nothing new to record
        moved = await self.schedules.advance(schedule.name, d.last_fire, upcoming)
        if moved and d.last_fire is not None:  # this worker moved it on
            if d.skipped:
                log.warning(
                    "cron.skipped",
                    schedule=schedule.name,
                    count=d.skipped,
                    catch_up_s=schedule.catch_up_s,
                )
            if d.coalesced:
                log.info("cron.coalesced", schedule=schedule.name, count=d.coalesced)
