"""The ready rotator: a few times a second, one step of keeping the claim table's dead rows
bounded (`Store.rotate_ready`, decided by `jobs.ready`). Every worker runs one; an advisory
lock lets one rotation through at a time, and a step with nothing to do is one cheap read
(two file sizes and a sequence)."""

from __future__ import annotations

import asyncio

from jobs.db import TRANSIENT_ERRORS
from jobs.logging import get_logger
from jobs.ready import Rotation
from jobs.store import Store

log = get_logger(__name__)

INTERVAL_S = 0.2


class ReadyRotator:
    def __init__(self, store: Store, interval_s: float = INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                step = await self.store.rotate_ready()
            except TRANSIENT_ERRORS as exc:
                log.warning("worker.db_unavailable", service="rotator", error=repr(exc))
                continue
            if step is not Rotation.WAIT:
                log.debug("queue.ready_rotated", step=step.value)
