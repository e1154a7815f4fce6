"""Payload models, one per job kind: the API validates with these, the worker too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoNoop(_Spec):
    """`demo.noop`: does nothing; for throughput and latency measurements."""


class DemoSleep(_Spec):
    """`demo.sleep`: waits `seconds` on the event loop (cancellable at any time)."""

    seconds: float = Field(default=1.0, ge=0, le=86_400)


class DemoFail(_Spec):
    """`demo.fail`: raises on the first `times` attempts, then succeeds."""

    times: int = Field(default=1, ge=0, le=1000)


class DemoCpu(_Spec):
    """`demo.cpu`: a CPU-bound loop of `n` iterations in the worker's process pool."""

    n: int = Field(default=5_000_000, ge=0, le=10_000_000_000)


class DemoProgress(_Spec):
    """`demo.progress`: `steps` steps of `interval_s` each, reporting progress after each."""

    steps: int = Field(default=10, ge=1, le=10_000)
    interval_s: float = Field(default=0.5, ge=0, le=3600)


SPECS: dict[str, type[BaseModel]] = {
    "demo.noop": DemoNoop,
    "demo.sleep": DemoSleep,
    "demo.fail": DemoFail,
    "demo.cpu": DemoCpu,
    "demo.progress": DemoProgress,
}
"""Every job kind's payload model, by kind: the API validates submissions with these."""
