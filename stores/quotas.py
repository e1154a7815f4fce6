"""The `submit_quota` table (migration 0011) and the count of an owner's queued jobs that a
quota caps: the statements and the `QuotaStore` that runs them. What a quota allows, and the
API's cache of quotas, live in `api.quotas`.

An owner's own row wins over the default row `*`, which the table always holds.
"""

from __future__ import annotations

from typing import Any

from jobs.db import Queries, Record

GET = """
SELECT owner, priority_min, priority_max, queues, max_queued, demo_kinds, updated_at,
       updated_by
FROM submit_quota WHERE owner = $1 OR owner = '*'
ORDER BY owner = '*'
LIMIT 1
"""
"""The owner's quota: its own row, else the default."""

LIST = """
SELECT owner, priority_min, priority_max, queues, max_queued, demo_kinds, updated_at,
       updated_by
FROM submit_quota ORDER BY owner <> '*', owner
"""

PUT = """
INSERT INTO submit_quota (owner, priority_min, priority_max, queues, max_queued, demo_kinds,
                          updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (owner) DO UPDATE
SET priority_min = excluded.priority_min, priority_max = excluded.priority_max,
    queues = excluded.queues, max_queued = excluded.max_queued,
    demo_kinds = excluded.demo_kinds, updated_at = now(), updated_by = excluded.updated_by
RETURNING owner, priority_min, priority_max, queues, max_queued, demo_kinds, updated_at,
          updated_by
"""

DELETE = "DELETE FROM submit_quota WHERE owner = $1 AND owner <> '*'"

QUEUED = """
SELECT count(*) FROM (
    SELECT 1 FROM job WHERE owner = $1 AND state = 'queued' LIMIT $2
) q
"""
"""The owner's queued jobs, counted no further than $2 (the cap and one)."""


class QuotaStore:
    """The quota rows over anything that runs a statement (the API's `store.db`; a
    connection)."""

    __slots__ = ("db",)

    def __init__(self, db: Queries) -> None:
        self.db = db

    async def get(self, owner: str) -> Record | None:
        """The owner's row, else the default `*` (None only when that is gone)."""
        return await self.db.fetchrow(GET, owner)

    async def all(self) -> list[Record]:
        """The default row first, then every owner's by name."""
        return await self.db.fetch(LIST)

    async def put(self, owner: str, values: dict[str, Any], by: str) -> Record:
        row = await self.db.fetchrow(
            PUT,
            owner,
            values["priority_min"],
            values["priority_max"],
            values["queues"],
            values["max_queued"],
            values["demo_kinds"],
            by,
        )
        assert row is not None
        return row

    async def delete(self, owner: str) -> bool:
        """False: the owner had no row of its own (the default `*` is never deleted)."""
        return await self.db.execute(DELETE, owner) == "DELETE 1"

    async def queued(self, owner: str, up_to: int) -> int:
        """The owner's queued jobs, counted no further than `up_to`."""
        count: int = await self.db.fetchval(QUEUED, owner, up_to)
        return count
