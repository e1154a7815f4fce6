"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobs.model import Job, JobState

NAME = r"^[A-Za-z0-9_.:-]+$"


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=128, pattern=NAME)
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", min_length=1, max_length=128, pattern=NAME)
    priority: int = Field(default=0, ge=-32768, le=32767)
    run_at: datetime | None = None
    delay_s: float | None = Field(default=None, ge=0, le=366 * 86400)
    max_attempts: int = Field(default=5, ge=1, le=100)
    timeout_s: int | None = Field(default=None, ge=1, le=7 * 86400)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=512)

    @model_validator(mode="after")
    def _one_start_time(self) -> SubmitJob:
        if self.run_at is not None and self.delay_s is not None:
            raise ValueError("give run_at or delay_s, not both")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at needs a timezone, e.g. 2026-11-22T21:30:00Z")
        return self


class JobOut(BaseModel):
    id: int
    kind: str
    queue: str
    state: JobState
    payload: Any
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    timeout_s: int | None
    progress: int
    progress_message: str | None
    result: Any
    errors: list[dict[str, Any]]
    idempotency_key: str | None
    owner: str
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate({f: getattr(job, f) for f in cls.model_fields})


class SubmitBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[SubmitJob] = Field(min_length=1, max_length=10_000)


class BatchOut(BaseModel):
    ids: list[int]
    duplicates: list[bool]


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class EventOut(BaseModel):
    at: datetime
    type: str
    data: Any


class KindOut(BaseModel):
    kind: str
    payload_schema: dict[str, Any]


class RetryFilterIn(BaseModel):
    """Which finished jobs to replay; unset fields do not filter."""

    model_config = ConfigDict(extra="forbid")

    states: list[JobState] = Field(default=[JobState.DEAD], min_length=1)
    kind: str | None = Field(default=None, max_length=128)
    queue: str | None = Field(default=None, max_length=128)
    owner: str | None = Field(default=None, max_length=256)
    finished_after: datetime | None = None
    finished_before: datetime | None = None

    @model_validator(mode="after")
    def _replayable(self) -> RetryFilterIn:
        wrong = [s.value for s in self.states if s not in (JobState.DEAD, JobState.CANCELLED)]
        if wrong:
            raise ValueError(f"only dead and cancelled jobs can be retried, not {wrong}")
        return self


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: RetryFilterIn = Field(default_factory=RetryFilterIn)


class BulkRetryOut(BaseModel):
    retried: int
    ids: list[int]


class RetryOut(BaseModel):
    id: int
    state: JobState


class QueueOut(BaseModel):
    queue: str
    queued: int
    running: int
    succeeded_last_minute: int
    dead_last_minute: int
    cancelled_last_minute: int
    oldest_queued_age_s: float | None


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    running: int


class CancelOut(BaseModel):
    id: int
    previous_state: JobState
    state: JobState
    cancel_requested: bool
