"""`conveyor.App`: declaring kinds in a user's package, and the mistakes it names."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from conveyor import App, AppError
from jobs.app import load_app
from worker.registry import registry_for


class Report(BaseModel):
    symbol: str


def test_the_payload_model_comes_from_the_handlers_annotation_or_is_given():
    app = App()

    @app.kind("report.build", timeout_s=60)
    async def build(ctx: object, payload: Report) -> dict:
        return {}

    @app.kind("report.plain", Report)
    def plain(ctx, payload):  # no annotations: the model is given
        return {}

    assert app.payloads == {"report.build": Report, "report.plain": Report}
    assert app.kinds["report.build"].timeout_s == 60
    assert app.kinds["report.build"].handler is build


@pytest.mark.parametrize(
    ("declare", "says"),
    [
        (lambda app: app.kind("x")(lambda ctx, payload: None), "annotate the handler"),
        (lambda app: app.register("bad name!", print, Report), "cannot name a kind"),
        (lambda app: app.register("k", print, dict), "pydantic BaseModel"),
        (lambda app: app.register("k", print, Report, load=print), "async function"),
    ],
)
def test_a_mistake_in_a_declaration_says_what_to_fix(declare, says):
    with pytest.raises(AppError, match=says):
        declare(App())


def test_a_kind_declared_twice_or_named_like_a_built_in_one_is_refused(monkeypatch):
    app = App()
    app.register("report.build", print, Report)
    with pytest.raises(AppError, match="declared twice"):
        app.register("report.build", print, Report)

    import types

    module = types.ModuleType("clashing_kinds")
    module.app = App()  # type: ignore[attr-defined]
    module.app.register("demo.noop", print, Report)  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "clashing_kinds", module)
    assert isinstance(load_app("clashing_kinds:app"), App)
    with pytest.raises(AppError, match="one of Conveyor's own"):
        registry_for("clashing_kinds:app")
