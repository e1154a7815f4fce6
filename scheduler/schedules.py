"""A schedule as the scheduler reads it (`Schedule`: a row of the `schedule` table, whose
statements live in `stores.schedules`), the job a fire enqueues, and the follow-ups a fire
(or a manual trigger) enqueues after its job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.errors import JobNotFound, ParentFailed
from jobs.handler import JSON
from jobs.logging import get_logger
from jobs.model import NewJob

if TYPE_CHECKING:
    from jobs.store import Store

log = get_logger(__name__)

CRON_OWNER = "system"
"""Cron jobs belong to the system principal: admins see them, users do not."""


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str
    timezone: str
    kind: str
    payload: JSON
    queue: str
    priority: int
    max_attempts: int
    enabled: bool
    catch_up_s: int
    backfill: bool
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime
    follow_ups: list[dict[str, Any]]
    """{kind, payload} each: enqueued after every fire, each depending on the one before."""

    @classmethod
    def from_row(cls, row: Any) -> Schedule:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def since(self) -> datetime:
        """Fires after this are this schedule's to enqueue: its last fire, or for a new or
        re-timed schedule (last_fire_at cleared), when it was last changed."""
        return self.last_fire_at or self.updated_at

    def idempotency_key(self, fire: datetime) -> str:
        return f"cron:{self.name}:{_utc_iso(fire)}"

    def job(self, idempotency_key: str) -> NewJob:
        """The job one fire (or a manual trigger) enqueues, owned by the system."""
        return NewJob(
            kind=self.kind,
            payload=self.payload if isinstance(self.payload, dict) else {},
            queue=self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
            idempotency_key=idempotency_key,
            owner=CRON_OWNER,
        )

    def follow_up_jobs(self, idempotency_key: str) -> list[NewJob]:
        """The follow-ups of the job keyed `idempotency_key`, each keyed after it: a second
        worker firing the same tick finds the same chain."""
        return [
            NewJob(
                kind=f["kind"],
                payload=f.get("payload") or {},
                queue=self.queue,
                priority=self.priority,
                max_attempts=self.max_attempts,
                idempotency_key=f"{idempotency_key}:then:{i}",
                owner=CRON_OWNER,
            )
            for i, f in enumerate(self.follow_ups, start=1)
        ]


def _utc_iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def trigger_key(name: str, at: datetime) -> str:
    """A manual trigger's own key: never the same as a fire's, never the same twice."""
    return f"trigger:{name}:{_utc_iso(at)}"


async def follow_up(store: Store, schedule: Schedule, key: str, job_id: int) -> list[int]:
    """Enqueue `schedule`'s follow-ups of the job `job_id` (keyed `key`), each depending on
    the one before; the chain's ids. A chain another worker made is found by its keys; one
    whose job already failed or was pruned is left as it is (its follow-ups were cancelled
    with it, or never mattered)."""
    chain = []
    parent = job_id
    for job in schedule.follow_up_jobs(key):
        try:
            made, duplicate = await store.submit_after(job, [parent])
        except (JobNotFound, ParentFailed):
            break
        if not duplicate:
            log.info("cron.follow_up", schedule=schedule.name, job_id=made.id, after=parent)
        chain.append(made.id)
        parent = made.id
    return chain
