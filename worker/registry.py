"""Job kinds by name: the handler, its payload model, whether it is CPU-bound, its timeout.

Async handlers run on the worker's event loop; plain functions are CPU-bound and run in the
worker's process pool, so computation never starves the heartbeat.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from compute import demo, kinds, specs
from jobs.model import JSON, Claimed

Load = Callable[[asyncpg.Pool, Claimed, Any], Awaitable[Any]]
"""`async def load(db, job, payload) -> inputs`, on the worker's loop before the handler."""
Save = Callable[[asyncpg.Pool, Claimed, Any, Any], Awaitable[JSON]]
"""`async def save(db, job, payload, output) -> result`, on the loop after the handler."""


@dataclass(frozen=True, slots=True)
class Kind:
    """A job kind. With `load`, the handler is called `handler(ctx, payload, inputs)` with
    what `load` read from the database; with `save`, the handler's return value goes to
    `save`, whose return value is the job's result. So a CPU-bound handler in a pool child
    stays a pure computation, and the database work happens in the worker, on its pool.

    `save` runs once per successful attempt, and an attempt can be repeated (a lost lease, a
    crash after `save` and before the finish): it must be idempotent, e.g. upserts keyed by
    the job's id.
    """

    name: str
    handler: Callable[..., Any]
    payload: type[BaseModel]
    timeout_s: float | None = None
    """Default for jobs of this kind; a job's own timeout_s overrides it. None: no limit."""
    load: Load | None = None
    save: Save | None = None

    @property
    def cpu_bound(self) -> bool:
        return not inspect.iscoroutinefunction(self.handler)


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        payload: type[BaseModel],
        *,
        timeout_s: float | None = None,
        load: Load | None = None,
        save: Save | None = None,
    ) -> Kind:
        if name in self._kinds:
            raise ValueError(f"job kind {name!r} is registered twice")
        kind = Kind(name, handler, payload, timeout_s, load, save)
        self._kinds[name] = kind
        return kind

    def kind(
        self, name: str, payload: type[BaseModel], *, timeout_s: float | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of `register`."""

        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, handler, payload, timeout_s=timeout_s)
            return handler

        return decorate

    def get(self, name: str) -> Kind | None:
        return self._kinds.get(name)

    def __iter__(self) -> Iterator[Kind]:
        return iter(sorted(self._kinds.values(), key=lambda k: k.name))

    def __len__(self) -> int:
        return len(self._kinds)


def default_registry() -> Registry:
    """Every built-in kind. Child processes of the pool build the same registry."""
    handlers: dict[str, Callable[..., Any]] = {
        "demo.noop": demo.noop,
        "demo.sleep": demo.sleep,
        "demo.fail": demo.fail,
        "demo.cpu": demo.cpu,
        "demo.progress": demo.progress,
    }
    registry = Registry()
    for name, handler in handlers.items():
        registry.register(name, handler, specs.SPECS[name])
    research: dict[str, tuple[Load | None, Callable[..., Any], Save]] = {
        "prices.ingest": (None, kinds.ingest, kinds.save_ingest),
        "strategy.optimize": (kinds.load_closes, kinds.optimize, kinds.save_optimize),
        "strategy.discover": (kinds.load_closes, kinds.discover, kinds.save_discover),
        "patterns.analyze": (kinds.load_ohlc, kinds.analyze, kinds.save_patterns),
        "leaderboard.refresh": (kinds.load_candidates, kinds.rank, kinds.save_leaderboard),
    }
    for name, (load, compute, save) in research.items():
        registry.register(name, compute, specs.SPECS[name], load=load, save=save)
    return registry
