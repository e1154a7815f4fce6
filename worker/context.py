"""The handler context, in the event loop and in a pool child."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

import structlog


@dataclass(slots=True)
class LoopContext:
    """For async handlers: progress goes to the worker's reporter, cancel is an event.

    An async handler is also cancelled as a task (CancelledError at its next await), so
    most need neither `cancelled()` nor `wait_cancelled()`; they are there for handlers
    that want to stop cleanly at a point of their choosing.
    """

    job_id: int
    kind: str
    attempt: int
    report: Callable[[int, str | None], None]
    cancel_event: asyncio.Event
    _log: structlog.typing.FilteringBoundLogger | None = None

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger:
        """A logger bound to the job (made on first use: most handlers never log)."""
        if self._log is None:
            self._log = structlog.get_logger("job").bind(
                job_id=self.job_id, kind=self.kind, attempt=self.attempt
            )
        return self._log

    def progress(self, percent: int, message: str | None = None) -> None:
        self.report(max(0, min(100, int(percent))), _text(message))

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    async def wait_cancelled(self) -> None:
        """Returns once a cancel is requested (or the lease is lost)."""
        await self.cancel_event.wait()


@dataclass
class ChildContext:
    """For CPU-bound handlers in a pool child: progress is sent to the parent over the pipe,
    cancellation is a flag in shared memory the parent sets."""

    job_id: int
    kind: str
    attempt: int
    conn: Connection
    cancel_flag: Synchronized  # type: ignore[type-arg]  # multiprocessing.Value('b')
    log: structlog.typing.FilteringBoundLogger = field(init=False)

    def __post_init__(self) -> None:
        self.log = structlog.get_logger("job").bind(
            job_id=self.job_id, kind=self.kind, attempt=self.attempt
        )

    def progress(self, percent: int, message: str | None = None) -> None:
        self.conn.send(("progress", max(0, min(100, int(percent))), _text(message)))

    def cancelled(self) -> bool:
        return bool(self.cancel_flag.value)


def _text(message: str | None) -> str | None:
    """Progress messages go into text and jsonb columns, which refuse NUL characters."""
    return None if message is None else str(message)[:1000].replace("\x00", "")
