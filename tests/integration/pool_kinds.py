"""Kinds that exist only for the process-pool tests (the children import this module)."""

from __future__ import annotations

import time

from compute.specs import DemoCpu
from jobs.app import App


def stubborn(ctx: object, payload: DemoCpu) -> None:
    """Never looks at ctx.cancelled(): only killing the child stops it."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        sum(range(10_000))


app = App()
app.register("test.stubborn", stubborn, DemoCpu)
