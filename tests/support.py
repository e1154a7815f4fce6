"""Helpers the tests share: database URLs, `eventually` instead of sleeps, and running a
kind's load → handler → save in the test's process."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from jobs.model import NewJob
from jobs.store import Store

T = TypeVar("T")

SCHEMA_TABLES = [
    "alembic_version",
    "api_key",
    "api_secret",
    "audit_event",
    "job",
    "job_dependency",
    "job_event",
    "job_hour",
    "job_minute",
    "job_ready",
    "job_ready_0",
    "job_ready_1",
    "job_stats",
    "kind_control",
    "leaderboard_entry",
    "leaderboard_snapshot",
    "owner_share",
    "pattern",
    "price_bar",
    "queue_control",
    "queue_depth",
    "rate_window",
    "schedule",
    "strategy_run",
    "submit_quota",
    "worker",
]
"""Every table a database at the migration head has, in name order."""


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def eventually(
    condition: Callable[[], Awaitable[T] | T], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Check `condition` (sync or async) until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


@dataclass
class InlineContext:
    """A job context for running a kind's handler in the test's own process: it records the
    progress reported and is never cancelled."""

    job_id: int
    kind: str
    attempt: int = 1
    reported: list[int] = field(default_factory=list)
    messages: list[str | None] = field(default_factory=list)
    log: Any = None

    def progress(self, percent: int, message: str | None = None) -> None:
        self.reported.append(percent)
        self.messages.append(message)

    def cancelled(self) -> bool:
        return False


async def run_inline(
    store: Store, kind: str, payload: dict[str, Any], owner: str, *, finish: bool = False
) -> Any:
    """Enqueue a job, claim it for real, and run its kind's load → handler → save here, as a
    worker would: the research tables get real rows. With `finish`, the job then succeeds
    with that result, as the worker's completer would write it."""
    return (await run_attempts(store, kind, payload, owner, 1, finish=finish))[0]


async def run_attempts(
    store: Store,
    kind: str,
    payload: dict[str, Any],
    owner: str,
    times: int,
    *,
    finish: bool = False,
) -> list[Any]:
    """`run_inline`, its attempt repeated `times` (as after a crash between storing and
    finishing); each attempt's result."""
    from worker.registry import default_registry

    await store.enqueue(NewJob(kind=kind, payload=payload, owner=owner, queue=f"inline-{kind}"))
    (job,) = await store.claim([f"inline-{kind}"], 1, "inline", 60)
    spec = default_registry().get(kind)
    assert spec is not None and spec.load is not None and spec.save is not None
    model = spec.payload.model_validate(payload)
    results = []
    for _ in range(times):
        inputs = await spec.load(store.db, job, model)
        output = spec.handler(InlineContext(job.id, kind), model, inputs)
        results.append(await spec.save(store.db, job, model, output))
    if finish:
        from jobs.transitions import Success

        assert await store.complete(job, Success(results[-1]))
    return results
