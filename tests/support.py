"""Helpers the tests share: database URLs and `eventually` instead of sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

SCHEMA_TABLES = [
    "alembic_version",
    "api_key",
    "job",
    "job_event",
    "job_stats",
    "price_bar",
    "schedule",
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
