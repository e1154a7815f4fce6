"""The listener: one connection outside the pool, LISTENing for new jobs on our queues.

Notifications sent while it is disconnected are lost, so each (re)connection also tells the
fetcher to look at once; the fetcher's jittered poll covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from jobs.db import TRANSIENT_ERRORS, Connection, connect_listener
from jobs.logging import get_logger
from jobs.sql import NOTIFY_CHANNEL

log = get_logger(__name__)


class Listener:
    def __init__(
        self,
        dsn: str,
        queues: list[str],
        notified: Callable[[], None],
        stopping: asyncio.Event,
    ) -> None:
        self.dsn = dsn
        self.queues = set(queues)
        self._notified = notified
        self._stopping = stopping

    async def run(self) -> None:
        def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload in self.queues:
                self._notified()

        while not self._stopping.is_set():
            conn: Connection | None = None
            try:
                conn = await connect_listener(self.dsn)
                await conn.add_listener(NOTIFY_CHANNEL, heard)
                self._notified()
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

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
