"""The `schedule` table: its statements and the `ScheduleStore` that runs them, for the
API's routes (list, get, create, edit under the row's lock, delete), the scheduler every
worker runs (load the enabled ones with the database's clock, advance a fire) and the
platform's default schedules. The model a row is read into (`Schedule`), what a fire
enqueues and its follow-ups are the scheduler's (`scheduler.schedules`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from jobs.db import Database, Record

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


def as_args(values: Mapping[str, Any]) -> list[Any]:
    """The values of COLUMNS, in order, for CREATE and UPDATE ($5 payload, $12 follow-ups:
    JSON text), from a schedule's fields by name."""
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


class ScheduleStore:
    """The schedule rows over one `Database` (the API's or a worker's `store.db`)."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, name: str) -> Record | None:
        return await self.db.fetchrow(GET, name)

    async def all(self) -> list[Record]:
        """Every schedule, enabled or not, by name."""
        return await self.db.fetch(LIST)

    async def create(self, values: Mapping[str, Any]) -> Record | None:
        """The new schedule's row; None when the name is taken (nothing is changed)."""
        return await self.db.fetchrow(CREATE, *as_args(values))

    async def update(
        self, name: str, change: Callable[[dict[str, Any]], Mapping[str, Any]]
    ) -> Record | None:
        """Write `change(current)` over the schedule named `name`, holding its row from the
        read to the write (GET_FOR_UPDATE): two edits at once both land. None when there is
        no such schedule; whatever `change` raises rolls the edit back and is raised."""
        async with self.db.transaction() as conn:
            current = await conn.fetchrow(GET_FOR_UPDATE, name)
            if current is None:
                return None
            row: Record | None = await conn.fetchrow(UPDATE, *as_args(change(dict(current))))
        assert row is not None  # the row is locked: it cannot have gone
        return row

    async def delete(self, name: str) -> bool:
        """False: there is no schedule of that name."""
        return (await self.db.execute(DELETE, name)).endswith(" 1")

    async def load_enabled(self) -> list[Record]:
        """LOAD_ENABLED: every enabled schedule with the database's clock (`now`) on each
        row; one row with `name` NULL and only `now` when none is enabled."""
        return await self.db.fetch(LOAD_ENABLED)

    async def advance(
        self, name: str, last_fire: datetime | None, next_fire: datetime | None
    ) -> bool:
        """ADVANCE: True when this call moved the schedule on (and so logs what it skipped)."""
        return (await self.db.execute(ADVANCE, name, last_fire, next_fire)).endswith(" 1")
