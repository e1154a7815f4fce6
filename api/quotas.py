"""What a non-admin may submit (table `submit_quota`, migration 0011, read through
`stores.quotas`): the decision for one submission (pure), and the book the API keeps of them.

An owner's own row wins over the default row `*`; admins are never limited. The book caches
each owner's quota for a second, so an admin's change holds within a second on every API
process without a query per submission. The queued-jobs cap is counted at submission, up to
the cap (an index range of the owner's queued jobs): concurrent submissions by one owner
can pass it by at most what they submit together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.keys import Principal
from compute.specs import admin_only
from jobs.db import Record
from jobs.model import NewJob
from stores.quotas import QuotaStore

DEFAULT = "*"
"""The row that applies to every non-admin without a row of its own."""
CACHE_S = 1.0


@dataclass(frozen=True)
class Quota:
    owner: str
    """Whose row it is: an owner's, or `*`."""
    priority_min: int
    priority_max: int
    queues: tuple[str, ...] | None
    """None: any queue."""
    max_queued: int | None
    """None: no cap."""
    demo_kinds: bool

    @classmethod
    def of(cls, row: Record) -> Quota:
        queues = row["queues"]
        return cls(
            owner=row["owner"],
            priority_min=row["priority_min"],
            priority_max=row["priority_max"],
            queues=None if queues is None else tuple(queues),
            max_queued=row["max_queued"],
            demo_kinds=row["demo_kinds"],
        )


def refusal(quota: Quota, job: NewJob) -> ApiError | None:
    """Why `quota` refuses one job, or None; the message says what is allowed."""
    whose = "users" if quota.owner == DEFAULT else quota.owner
    if not quota.priority_min <= job.priority <= quota.priority_max:
        return ApiError(
            422,
            "priority_not_allowed",
            f"priority: {whose} may submit priorities from {quota.priority_min} to"
            f" {quota.priority_max}, not {job.priority}",
        )
    if quota.queues is not None and job.queue not in quota.queues:
        allowed = ", ".join(quota.queues) or "none"
        return ApiError(
            403,
            "queue_not_allowed",
            f"queue {job.queue!r} is not open to {whose}: submit to one of {allowed}, or ask an"
            " operator",
        )
    if job.kind.startswith("demo.") and not quota.demo_kinds:
        return ApiError(
            403,
            "admin_only_kind",
            f"the demo kinds are for admins here ({whose} may not submit {job.kind}): an"
            " operator can enable them with `conveyor quotas set '*' --demo`",
        )
    return None


def kind_refusal(quota: Quota | None, kind: str) -> str | None:
    """Why a caller under `quota` (None: an admin) may submit no job of `kind` whatever its
    payload, or None when some job of it may pass (a payload can still be refused: a user's
    `publish`). The same rules as `refusal` and `api.payloads.authorized`, by kind alone."""
    if quota is None:
        return None
    whose = "users" if quota.owner == DEFAULT else quota.owner
    shared = admin_only(kind, {})
    if shared is not None:
        return f"only an admin may submit {kind}: {shared}"
    if kind.startswith("demo.") and not quota.demo_kinds:
        return f"the demo kinds are for admins here ({whose} may not submit {kind})"
    if quota.queues is not None and not quota.queues:
        return f"no queue is open to {whose}: ask an operator"
    return None


def over_cap(quota: Quota, queued: int, adding: int) -> ApiError | None:
    if quota.max_queued is None or queued + adding <= quota.max_queued:
        return None
    return ApiError(
        403,
        "queued_cap",
        f"{quota.max_queued:,} queued jobs at most, and {queued:,} are queued"
        f"{'' if adding == 1 else f' (this adds {adding:,})'}: wait for some to start, cancel"
        " some, or ask an operator to raise max_queued",
    )


@dataclass
class QuotaBook:
    rows: QuotaStore
    _cache: dict[str, tuple[float, Quota]]

    @classmethod
    def over(cls, rows: QuotaStore) -> QuotaBook:
        return cls(rows, {})

    async def quota(self, owner: str) -> Quota:
        hit = self._cache.get(owner)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        row = await self.rows.get(owner)
        assert row is not None, "the default quota row `*` is gone: run `conveyor migrate`"
        quota = Quota.of(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[owner] = (time.monotonic(), quota)
        return quota

    async def admit(self, who: Principal, jobs: Sequence[NewJob]) -> None:
        """Raise the first refusal of `jobs` by `who`'s quota (`jobs[i]: …` in a batch)."""
        if who.is_admin:
            return
        quota = await self.quota(who.owner)
        for i, job in enumerate(jobs):
            problem = refusal(quota, job)
            if problem is not None:
                if len(jobs) > 1:
                    problem.message = f"jobs[{i}]: {problem.message}"
                raise problem
        if quota.max_queued is not None:
            queued = await self.rows.queued(who.owner, quota.max_queued + 1)
            problem = over_cap(quota, queued, len(jobs))
            if problem is not None:
                raise problem

    async def put(self, owner: str, values: dict[str, Any], by: str) -> Record:
        self._cache.pop(owner, None)
        return await self.rows.put(owner, values, by)

    async def delete(self, owner: str) -> bool:
        self._cache.pop(owner, None)
        return await self.rows.delete(owner)

    async def all(self) -> list[Record]:
        return await self.rows.all()
