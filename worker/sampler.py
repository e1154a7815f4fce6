"""The depth sampler: once a minute (the database's), the first worker to heartbeat writes
each queue's queued and running counts into `queue_depth` and prunes the per-minute
aggregates past their retention; every other worker's call that minute finds the minute's
marker row and counts nothing. Between minutes a worker does not ask at all: the answer says
how long until the next one."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.store import Store

log = get_logger(__name__)

RETENTION_DAYS = 8
"""How long `job_minute` and `queue_depth` rows are kept: a week's charts, and a day more."""
PRUNE_BATCH = 10_000
"""Rows of each table deleted per minute at most (a backlog goes in steps)."""


def next_due(now: float, next_minute_in_s: float, margin_s: float = 0.05) -> float:
    """When (monotonic) to ask again: just after the database's next minute begins."""
    return now + max(0.0, next_minute_in_s) + margin_s


class DepthSampler:
    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._due = 0.0

    async def tick(self) -> None:
        """Sample if this worker has not asked yet this minute; never raises for the
        database (the next heartbeat asks again)."""
        if self._clock() < self._due:
            return
        try:
            sample = await self.store.sample_depth()
            self._due = next_due(self._clock(), sample.next_minute_in_s)
            if sample.sampled:
                pruned = await self.store.prune_aggregates(
                    older_than_days=RETENTION_DAYS, limit=PRUNE_BATCH
                )
                if pruned:
                    log.info("worker.aggregates_pruned", rows=pruned)
        except (*TRANSIENT_ERRORS, asyncpg.PostgresError) as exc:
            log.warning("worker.depth_unsampled", error=repr(exc))
