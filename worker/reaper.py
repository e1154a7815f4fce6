"""The reaper: every few seconds (jittered), expired leases go back to `queued` with backoff
or to `dead`, and workers that stopped heartbeating lose their row. Any worker may run it;
SKIP LOCKED keeps reapers from fighting over the same rows."""

from __future__ import annotations

import asyncio
import random

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.metrics import Tally
from jobs.store import Store
from worker.settings import WorkerSettings

log = get_logger(__name__)


class Reaper:
    def __init__(self, store: Store, settings: WorkerSettings, tally: Tally) -> None:
        self.store = store
        self.settings = settings
        self.tally = tally

    async def run(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.reap_interval_s * random.uniform(0.5, 1.5))  # noqa: S311
            try:
                for r in await self.store.reap():
                    self.tally.record(r.queue, r.kind, r.outcome, None)
                await self.store.prune_workers(max(3 * s.lease_s, 60.0))
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="reaper", error=repr(exc))
