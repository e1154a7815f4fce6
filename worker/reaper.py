"""The reaper: every few seconds (jittered), expired leases go back to `queued` with backoff
or to `dead`, workers that stopped heartbeating lose their row, and waiting jobs whose
parents are done are decided (what a release missed). Any worker may run it; SKIP LOCKED
keeps reapers from fighting over the same rows.

Most passes look back only as far as the previous one (`reap_window_s`): the lease index
also keeps an entry for every finished job's last lease, and while a long transaction holds
back vacuum a pass from the start of it would walk every job finished since."""

from __future__ import annotations

import asyncio
import random
import time

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.metrics import Tally
from jobs.store import Store
from worker.settings import WorkerSettings

log = get_logger(__name__)

FULL_PASS_EVERY_S = 600.0
WINDOW_MARGIN_S = 10.0


def reap_window_s(
    since_last_pass_s: float | None,
    last_reaped: int,
    since_full_pass_s: float,
    *,
    full_every_s: float = FULL_PASS_EVERY_S,
    margin_s: float = WINDOW_MARGIN_S,
) -> float | None:
    """How far back this pass looks for expired leases (None: all the way).

    A lease that expired before the previous pass began was that pass's to reap, so looking
    back to it (plus a margin for the two clocks and the statement's own time) finds every
    new expiry. A pass looks all the way back when it is the first, when the previous one
    reaped anything (there may be more behind its batch), and every `full_every_s` (a row
    another transaction held locked was skipped, and nothing else would come back for it)."""
    if since_last_pass_s is None or last_reaped > 0 or since_full_pass_s >= full_every_s:
        return None
    return since_last_pass_s + margin_s


class Reaper:
    def __init__(self, store: Store, settings: WorkerSettings, tally: Tally) -> None:
        self.store = store
        self.settings = settings
        self.tally = tally

    async def run(self) -> None:
        s = self.settings
        last_pass: float | None = None
        last_full = time.monotonic()
        reaped = 0
        while True:
            await asyncio.sleep(s.reap_interval_s * random.uniform(0.5, 1.5))  # noqa: S311
            now = time.monotonic()
            window = reap_window_s(
                None if last_pass is None else now - last_pass, reaped, now - last_full
            )
            try:
                done = await self.store.reap(within_s=window)
                await self.store.prune_workers(s.worker_silent_s)
                await self.store.sweep_waiting()
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="reaper", error=repr(exc))
                continue
            for r in done:
                self.tally.record(r.queue, r.kind, r.outcome, None)
            last_pass, reaped = now, len(done)
            if window is None:
                last_full = now
