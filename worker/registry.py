"""Job kinds by name: the handler, its payload model, whether it is CPU-bound, its timeout.

Async handlers run on the worker's event loop; plain functions are CPU-bound and run in the
worker's process pool, so computation never starves the heartbeat.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from compute import demo, specs


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    handler: Callable[..., Any]
    payload: type[BaseModel]
    timeout_s: float | None = None
    """Default for jobs of this kind; a job's own timeout_s overrides it. None: no limit."""

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
    ) -> Kind:
        if name in self._kinds:
            raise ValueError(f"job kind {name!r} is registered twice")
        kind = Kind(name, handler, payload, timeout_s)
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
    return registry
