"""Job kinds by name: the handler, its payload model, whether it is CPU-bound, its timeout.

Async handlers run on the worker's event loop; plain functions are CPU-bound and run in the
worker's process pool, so computation never starves the heartbeat.

A handler, load or save may be given as `"module:function"`: its module is imported the
first time a job of the kind runs, so a worker that only runs I/O kinds never pays for
pandas and TA-Lib (about 0.4 s and 80 MiB), and starts claiming at once.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from compute import specs
from jobs.app import AppError, load_app
from jobs.db import Database
from jobs.model import JSON, Claimed

Load = Callable[[Database, Claimed, Any], Awaitable[Any]]
"""`async def load(db, job, payload) -> inputs`, on the worker's loop before the handler."""
Save = Callable[[Database, Claimed, Any, Any], Awaitable[JSON]]
"""`async def save(db, job, payload, output) -> result`, on the loop after the handler."""


@cache
def _imported(ref: str) -> Any:
    module, sep, name = ref.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{ref!r} is not a 'module:function' reference")
    return getattr(importlib.import_module(module), name)


_is_async = cache(inspect.iscoroutinefunction)
"""Asked once per job: cached, it costs a dict lookup instead of inspecting the function."""


def resolve(ref: Any) -> Any:
    """The callable a reference names (imported once), or the callable itself."""
    return _imported(ref) if isinstance(ref, str) else ref


@cache
def _defined_async(ref: str) -> bool | None:
    """Whether "module:function" is an `async def` at its module's top level, read from the
    module's source without importing it; None when the source cannot say (the module is
    imported already or has no .py source, the name is decorated or bound otherwise)."""
    module, _, name = ref.partition(":")
    if module in sys.modules:
        return None  # imported already: asking the function itself costs nothing
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return _top_level_functions(spec.origin).get(name)


@cache
def _top_level_functions(origin: str) -> dict[str, bool | None]:
    """For each name a module's source binds at its top level: True for a plain `async def`,
    False for a plain `def`, None for anything else (decorated, a class, bound another way).
    Parsed once per module: the research kinds share one, and parsing it again for each
    kind cost some 20 ms of a worker's way to its first claim."""
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, bool | None] = {}
    for node in tree.body:  # the last binding of a name is the one the module keeps
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            plain = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            is_async = isinstance(node, ast.AsyncFunctionDef)
            found[node.name] = is_async if plain and not node.decorator_list else None
        else:
            for bound in _bound(node):
                found[bound] = None  # bound some other way (an import, an assignment, an `if`)
    return found


def _bound(statement: ast.stmt) -> set[str]:
    """Every name a module-level statement (not a `def` or `class`) may bind."""
    names: set[str] = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


@dataclass(frozen=True, slots=True)
class Kind:
    """A job kind. With `load`, the handler is called `handler(ctx, payload, inputs)` with
    what `load` read from the database; with `save`, the handler's return value goes to
    `save`, whose return value is the job's result. So a CPU-bound handler in a pool child
    stays a pure computation, and the database work happens in the worker, on its pool.

    `save` runs once per successful attempt, and an attempt can be repeated (a lost lease, a
    crash after `save` and before the finish): it must be idempotent, e.g. upserts keyed by
    the job's id.

    `handler`, `load` and `save` are given as callables or as "module:function" strings
    (imported when first used).
    """

    name: str
    handler_ref: Callable[..., Any] | str
    payload: type[BaseModel]
    timeout_s: float | None = None
    """Default for jobs of this kind; a job's own timeout_s overrides it. None: no limit."""
    load_ref: Load | str | None = None
    save_ref: Save | str | None = None

    @property
    def handler(self) -> Callable[..., Any]:
        return resolve(self.handler_ref)  # type: ignore[no-any-return]

    @property
    def load(self) -> Load | None:
        return resolve(self.load_ref)  # type: ignore[no-any-return]

    @property
    def save(self) -> Save | None:
        return resolve(self.save_ref)  # type: ignore[no-any-return]

    @property
    def has_load(self) -> bool:
        return self.load_ref is not None

    @property
    def has_save(self) -> bool:
        return self.save_ref is not None

    @property
    def cpu_bound(self) -> bool:
        """A plain function (run in the pool), not a coroutine function. Imports the
        handler's module when it is a reference."""
        return not _is_async(self.handler)

    @property
    def declared_cpu_bound(self) -> bool:
        """`cpu_bound`, read from the handler's source while its module is not imported
        yet, so saying what a worker runs imports nothing (pandas for the research kinds);
        asked of the handler itself otherwise."""
        if isinstance(self.handler_ref, str):
            is_async = _defined_async(self.handler_ref)
            if is_async is not None:
                return not is_async
        return self.cpu_bound

    def published(self) -> dict[str, Any]:
        """What the worker's row says of the kind (`worker.kinds`)."""
        return {
            "kind": self.name,
            "timeout_s": self.timeout_s,
            "cpu_bound": self.declared_cpu_bound,
        }


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def register(
        self,
        name: str,
        handler: Callable[..., Any] | str,
        payload: type[BaseModel],
        *,
        timeout_s: float | None = None,
        load: Load | str | None = None,
        save: Save | str | None = None,
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

    def published(self) -> list[dict[str, Any]]:
        """Every kind as the worker's row lists it, by name."""
        return [kind.published() for kind in self]


def registry_for(app: str | None = None) -> Registry:
    """The built-in kinds, and those of the user's app (`--app package.module:attribute`)
    when one is given. A pool child builds it again from the same reference."""
    registry = default_registry()
    if app is None:
        return registry
    for decl in load_app(app).kinds.values():
        if registry.get(decl.name) is not None:
            raise AppError(f"--app {app}: kind {decl.name!r} is one of Conveyor's own; rename it")
        registry.register(
            decl.name,
            decl.handler,
            decl.payload,
            timeout_s=decl.timeout_s,
            load=decl.load,
            save=decl.save,
        )
    return registry


def default_registry() -> Registry:
    """Every built-in kind, by reference: nothing of `kinds` or `compute` beyond the payload
    models is imported until a job needs it. Child processes of the pool build the same
    registry."""
    registry = Registry()
    for name in ("noop", "sleep", "fail", "cpu", "progress"):
        registry.register(f"demo.{name}", f"kinds.demo:{name}", specs.SPECS[f"demo.{name}"])
    research: dict[str, tuple[str | None, str, str]] = {
        "prices.ingest": (None, "ingest", "save_ingest"),
        "strategy.optimize": ("load_closes", "optimize", "save_optimize"),
        "strategy.discover": ("load_closes", "discover", "save_discover"),
        "patterns.analyze": ("load_ohlc", "analyze", "save_patterns"),
        "leaderboard.refresh": ("load_candidates", "rank", "save_leaderboard"),
    }
    for name, (load, compute, save) in research.items():
        registry.register(
            name,
            f"kinds.research:{compute}",
            specs.SPECS[name],
            load=load and f"kinds.research:{load}",
            save=f"kinds.research:{save}",
        )
    return registry
