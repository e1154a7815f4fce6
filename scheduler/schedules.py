"""The `schedule` table as the scheduler reads and advances it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.handler import JSON

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

    @classmethod
    def from_row(cls, row: Any) -> Schedule:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def since(self) -> datetime:
        """Fires after this are this schedule's to enqueue: its last fire, or for a new or
        re-timed schedule (last_fire_at cleared), when it was last changed."""
        return self.last_fire_at or self.updated_at

    def idempotency_key(self, fire: datetime) -> str:
        return f"cron:{self.name}:{fire.isoformat().replace('+00:00', 'Z')}"
