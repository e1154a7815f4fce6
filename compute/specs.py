"""Payload models, one per job kind: the API validates with these, the worker too."""

from __future__ import annotations

import json
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class JsonInput(BaseModel):
    """A model for JSON from clients: unknown fields are refused, and a number field takes
    a JSON number only. Pydantic alone would read `true` as 1 and `"3"` as 3; like JSON
    Schema, `3.0` is still a valid integer."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool | str) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if _numeric(annotation):
                raise ValueError(f"Input should be a number, not {json.dumps(value)}")
        return value


def _numeric(annotation: Any) -> bool:
    """int or float, or an optional one."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return annotation in (int, float) or (
        bool(options) and all(o in (int, float, type(None)) for o in options)
    )


class _Spec(JsonInput):
    pass


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
