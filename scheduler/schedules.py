"""The `schedule` table as the scheduler reads and advances it, and the follow-ups a fire
(or a manual trigger) enqueues after its job."""

from __future__ import annotations

import json
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

# Every enabled schedule, and the database's clock in the same round trip: every worker
# decides what is due against one clock, whatever its own says.
LOAD_ENABLED = """
SELECT n.now, s.*
FROM (SELECT clock_timestamp() AS now) n
LEFT JOIN schedule s ON s.enabled
ORDER BY s.name
"""

# Fires only move forward: a worker with an older view cannot move last_fire_at back. The
# row count says which worker advanced it (and so logs what was skipped).
ADVANCE = """
UPDATE schedule
SET last_fire_at = coalesce($2, last_fire_at), next_fire_at = $3
WHERE name = $1
  AND ($2::timestamptz IS NULL OR last_fire_at IS NULL OR last_fire_at < $2)
"""


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


COLUMNS = (
    "name, cron, timezone, kind, payload, queue, priority, max_attempts, enabled, catch_up_s, "
    "backfill, follow_ups"
)

CREATE = f"""
INSERT INTO schedule ({COLUMNS})
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10, $11, $12::text::jsonb)
ON CONFLICT (name) DO NOTHING
RETURNING *
"""

GET = "SELECT * FROM schedule WHERE name = $1"

GET_FOR_UPDATE = "SELECT * FROM schedule WHERE name = $1 FOR UPDATE"
"""A patch's read: it holds the row until the patch's write, so two edits at once both land
(the second reads the first's result) instead of the later overwriting the earlier."""

LIST = "SELECT * FROM schedule ORDER BY name"

DELETE = "DELETE FROM schedule WHERE name = $1"

# An edit of when a schedule fires (cron, timezone) or a re-enable restarts its clock:
# last_fire_at is cleared and updated_at set, so no fire of the old timing, and none from
# the time it was off, is caught up.
UPDATE = f"""
UPDATE schedule s
SET ({COLUMNS}) = (
        $1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10, $11, $12::text::jsonb
    ),
    last_fire_at = CASE WHEN s.cron IS DISTINCT FROM $2 OR s.timezone IS DISTINCT FROM $3
                             OR (NOT s.enabled AND $9)
                        THEN NULL ELSE s.last_fire_at END,
    next_fire_at = NULL,
    updated_at = now()
WHERE s.name = $1
RETURNING *
"""


def as_args(s: Schedule | dict[str, Any]) -> list[Any]:
    """The values of COLUMNS, in order, for CREATE and UPDATE ($5 payload, $12 follow-ups:
    JSON text)."""
    values = s if isinstance(s, dict) else {k: getattr(s, k) for k in Schedule.__slots__}
    return [
        values["name"],
        values["cron"],
        values["timezone"],
        values["kind"],
        json.dumps(values["payload"]),
        values["queue"],
        values["priority"],
        values["max_attempts"],
        values["enabled"],
        values["catch_up_s"],
        values["backfill"],
        json.dumps(values.get("follow_ups") or []),
    ]


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
