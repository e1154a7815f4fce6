"""Worker settings: environment (CONVEYOR_WORKER_*) or `conveyor worker` options."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_WORKER_", extra="ignore")

    queues: list[str] = Field(default=["default"], description="queues to claim from")
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
    cancel_grace_s: float = Field(
        default=2.0, ge=0, description="a child process that ignores a cancel is killed (s)"
    )
    completer_batch: int = Field(default=256, ge=1, description="outcomes per write (count)")
    completer_flush_ms: float = Field(
        default=5.0, ge=0, description="longest an outcome waits to be written (ms)"
    )
    cron: bool = Field(default=True, description="run the cron scheduler in this worker")
    progress_flush_ms: float = Field(
        default=200.0, ge=10, description="progress reports are written this often (ms)"
    )

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3
