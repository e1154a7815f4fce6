"""Job kinds declared in the user's own package, beside Conveyor's built-in ones.

    # mypkg/jobs.py
    from pydantic import BaseModel
    from conveyor import App, JobContext

    app = App()

    class Report(BaseModel):
        symbol: str

    @app.kind("report.build", timeout_s=600)
    async def build(ctx: JobContext, payload: Report) -> dict:
        ...

`conveyor worker --app mypkg.jobs:app` runs these kinds, and `conveyor api --app
mypkg.jobs:app` validates and documents them (OpenAPI, `/v1/kinds`): give both the same
`--app` (or set CONVEYOR_APP for both). An `async def` handler runs on the worker's event
loop; a plain `def` is CPU-bound and runs in the worker's process pool, whose children import
the same module. `load` and `save` (both async, on the worker) read and write the database
around a CPU-bound handler, as the built-in research kinds do.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

KIND_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class AppError(Exception):
    """An app cannot be loaded or a kind cannot be declared; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class KindDecl:
    """One declared kind: what the API validates with and the worker runs."""

    name: str
    handler: Callable[..., Any]
    payload: type[BaseModel]
    timeout_s: float | None = None
    load: Callable[..., Any] | None = None
    save: Callable[..., Any] | None = None


class App:
    """A set of job kinds in the user's package."""

    def __init__(self) -> None:
        self._kinds: dict[str, KindDecl] = {}

    def kind(
        self,
        name: str,
        payload: type[BaseModel] | None = None,
        *,
        timeout_s: float | None = None,
        load: Callable[..., Any] | None = None,
        save: Callable[..., Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare the decorated function as the handler of kind `name`. The payload model is
        `payload`, or else the annotation of the handler's second parameter."""

        def declare(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.register(
                name,
                handler,
                payload or _payload_of(name, handler),
                timeout_s=timeout_s,
                load=load,
                save=save,
            )
            return handler

        return declare

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        payload: type[BaseModel],
        *,
        timeout_s: float | None = None,
        load: Callable[..., Any] | None = None,
        save: Callable[..., Any] | None = None,
    ) -> KindDecl:
        if not KIND_NAME.fullmatch(name):
            raise AppError(f"{name!r} cannot name a kind: use 1 to 128 letters, digits and . _ : -")
        if name in self._kinds:
            raise AppError(f"job kind {name!r} is declared twice in this app")
        if not (isinstance(payload, type) and issubclass(payload, BaseModel)):
            raise AppError(f"{name}: the payload model must be a pydantic BaseModel class")
        for what, fn in (("load", load), ("save", save)):
            if fn is not None and not inspect.iscoroutinefunction(fn):
                raise AppError(
                    f"{name}: `{what}` must be an async function (it runs on the worker)"
                )
        decl = KindDecl(name, handler, payload, timeout_s, load, save)
        self._kinds[name] = decl
        return decl

    @property
    def kinds(self) -> Mapping[str, KindDecl]:
        return dict(self._kinds)

    @property
    def payloads(self) -> dict[str, type[BaseModel]]:
        return {name: k.payload for name, k in self._kinds.items()}


def _payload_of(name: str, handler: Callable[..., Any]) -> type[BaseModel]:
    params = list(inspect.signature(handler).parameters.values())
    hints = typing.get_type_hints(handler) if len(params) >= 2 else {}
    model = hints.get(params[1].name) if len(params) >= 2 else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise AppError(
            f"{name}: annotate the handler's payload parameter with its pydantic model "
            "(`async def handle(ctx, payload: MyModel)`), or pass `payload=MyModel`"
        )
    return model


def load_app(ref: str) -> App:
    """The App that `ref` ("package.module:attribute") names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise AppError(f"--app {ref!r}: give it as package.module:attribute, e.g. mypkg.jobs:app")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(
            f"--app {ref!r}: cannot import {module_name} ({exc}); is its package installed in "
            "this environment, or on PYTHONPATH?"
        ) from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise AppError(
            f"--app {ref!r}: {module_name}.{attr} is {type(app).__name__}, not a conveyor.App"
        )
    return app
