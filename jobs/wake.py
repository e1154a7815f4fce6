"""Waking workers after the commit, coalesced: the API's way to announce new jobs.

`Store.enqueue` notifies inside the inserting transaction, which is what a caller enqueueing
in its own transaction needs (no wake-up for a rolled-back job). Its price is that notifying
transactions commit one at a time, each waiting for its own WAL flush. The API inserts in
autocommit instead, quietly, and tells a Waker which queue got a job; the Waker sends one
notification per queue per round trip on its own connection, so a burst of a thousand
submits costs a handful of notifications and the inserts commit together.

If the Waker cannot reach the database the jobs are still there: workers claim at least
every poll interval (1 s by default) whether or not anyone notified them.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from jobs import sql
from jobs.db import TRANSIENT_ERRORS, asyncpg_dsn
from jobs.logging import get_logger

log = get_logger(__name__)


class Waker:
    def __init__(self, database_url: str, *, pooled: bool = False) -> None:
        """`pooled`: `database_url` leads to a transaction pooler, which refuses session
        settings (NOTIFY itself is transactional and passes through it)."""
        self._dsn = asyncpg_dsn(database_url)
        self._pooled = pooled
        self._pending: set[str] = set()
        self._marked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self, queue: str) -> None:
        """Ask for the queue's workers to be notified soon (returns at once)."""
        self._pending.add(queue)
        self._marked.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="waker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                await self._marked.wait()
                self._marked.clear()
                # Marks made while this round trip is in flight wait for the next one.
                queues, self._pending = sorted(self._pending), set()
                try:
                    if conn is None or conn.is_closed():
                        # The notification's durability is worthless (a crash wakes nobody
                        # anyway), so its commit does not wait for a WAL flush.
                        conn = await asyncpg.connect(
                            self._dsn,
                            **(
                                {"statement_cache_size": 0}
                                if self._pooled
                                else {"server_settings": {"synchronous_commit": "off"}}
                            ),
                        )
                    await conn.execute(sql.NOTIFY_QUEUES, queues)
                except TRANSIENT_ERRORS as exc:
                    log.warning("wake.unsent", queues=queues, error=repr(exc))
                    conn = None
                    await asyncio.sleep(1.0)  # workers poll meanwhile
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()
