"""Worker settings: environment (CONVEYOR_WORKER_*) or `conveyor worker` options."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PRUNE_AFTER_MIN_S = 60.0
"""By default a worker's row is pruned after max(3 × lease, this) without a heartbeat."""


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_WORKER_", extra="ignore", populate_by_name=True
    )

    app: str | None = Field(
        default=None,
        description="the user's kinds, package.module:attribute (CONVEYOR_APP), run beside "
        "the built-in ones",
        validation_alias=AliasChoices("app", "CONVEYOR_APP", "CONVEYOR_WORKER_APP"),
    )

    queues: Annotated[list[str], NoDecode] = Field(
        default=["default"],
        min_length=1,
        description="queues to claim from (CONVEYOR_WORKER_QUEUES: comma-separated)",
    )
    concurrency: int = Field(default=16, ge=1, description="jobs run at once (count)")
    processes: int = Field(
        default=2, ge=0, description="child processes for CPU-bound kinds (count)"
    )
    lease_s: float = Field(default=30.0, gt=0, description="lease length (seconds)")
    grace_s: float = Field(
        default=30.0, ge=0, description="on SIGTERM, how long running jobs may finish (s)"
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="claim at least this often without a NOTIFY (s)"
    )
    reap_interval_s: float = Field(default=5.0, gt=0, description="reaper period (seconds)")
    prune_after_s: float | None = Field(
        default=None,
        gt=0,
        description="the reaper deletes a worker's row (`worker`) after this long without a "
        "heartbeat (s); unset: max(3 × lease, 60 s). Longer than the lease: a live worker "
        "heartbeats three times a lease",
    )
    cancel_grace_s: float = Field(
        default=2.0, ge=0, description="a child process that ignores a cancel is killed (s)"
    )
    prefetch: int = Field(
        default=256,
        ge=0,
        description="at most this many jobs claimed ahead of free slots (count). Only as many "
        "as the slots use up during one claim's round trip are taken (none for jobs much "
        "longer than that), and any not started within a heartbeat are handed back",
    )
    completer_batch: int = Field(default=256, ge=1, description="outcomes per write (count)")
    completer_flush_ms: float = Field(
        default=0.0,
        ge=0,
        description="wait this long for a batch to gather before a write (ms); 0: write at "
        "once, and outcomes that finish meanwhile go in the next batch",
    )
    outbox: int = Field(
        default=1024,
        ge=1,
        description="outcomes waiting to be written at most (count): when the database falls "
        "this far behind, finished handlers wait and the worker stops claiming",
    )
    cron: bool = Field(default=True, description="run the cron scheduler in this worker")
    progress_flush_ms: float = Field(
        default=200.0, ge=10, description="progress reports are written this often (ms)"
    )

    @field_validator("queues", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @model_validator(mode="after")
    def _prune_after_the_lease(self) -> WorkerSettings:
        if self.prune_after_s is not None and self.prune_after_s <= self.lease_s:
            raise ValueError(
                f"prune_after_s ({self.prune_after_s:g}) must be longer than the lease "
                f"({self.lease_s:g} s), or live workers that miss a heartbeat lose their row"
            )
        return self

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3

    @property
    def worker_silent_s(self) -> float:
        """How long a worker's row outlives its last heartbeat before the reaper prunes it."""
        if self.prune_after_s is not None:
            return self.prune_after_s
        return max(3 * self.lease_s, PRUNE_AFTER_MIN_S)
