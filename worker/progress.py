"""The progress writer: every few hundred milliseconds, the latest progress report of each
running job (fenced like a finish: a lost lease writes nothing). Handlers may report as often
as they like; only the latest value per job reaches the database."""

from __future__ import annotations

import asyncio

from jobs.db import TRANSIENT_ERRORS
from jobs.model import Lease
from jobs.store import Store


class ProgressWriter:
    def __init__(
        self, store: Store, reports: dict[Lease, tuple[int, str | None]], every_ms: float
    ) -> None:
        self.store = store
        self.reports = reports  # the executor's, keyed by lease, latest report only
        self.every_ms = every_ms

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every_ms / 1000)
            pending = dict(self.reports)
            self.reports.clear()
            for lease, (percent, message) in pending.items():
                try:
                    await self.store.report_progress(lease, percent, message)
                except TRANSIENT_ERRORS:
                    self.reports.setdefault(lease, (percent, message))
