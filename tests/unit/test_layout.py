"""The one door to the database holds: outside `jobs` and `stores`, production code reaches
the database through `store.db` (a `jobs.db.Database`) or an area's store, never through the
queue's pool. Import contracts cannot see an attribute, so this reads the source."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = ("api", "scheduler", "kinds", "conveyor", "worker")

STORE_POOL = re.compile(r"\b_?store\w*(?:\([^()]*\))?\.pool\b")
"""A store's pool however it is reached: `store.pool`, `self.store.pool`,
`request.app.state.store.pool`, `_store(request).pool`. (`worker.pool.ProcessPool`, the
executor's `self.pool`, is the process pool: not a store's.)"""


def pool_reads(text: str) -> list[str]:
    return [
        f"{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), start=1)
        if STORE_POOL.search(line)
    ]


def test_the_pattern_finds_every_way_a_store_s_pool_was_read():
    for line in (
        "rows = await self.store.pool.fetch(LOAD_ENABLED)",
        "pool: asyncpg.Pool = request.app.state.store.pool",
        "status = await _store(request).pool.execute(schedules.DELETE, name)",
        "store.pool, keep_snapshots, store.settings.prune_batch",
    ):
        assert pool_reads(line), line
    for line in (
        "from worker.pool import ProcessPool",
        "if cpu_bound and self.pool is not None:",
        "inputs = await load(self.store.db, job, payload)",
        "self._pool = ProcessPool(settings.processes)",
    ):
        assert not pool_reads(line), line


def test_no_module_outside_jobs_and_stores_reads_a_store_s_pool():
    found = {
        str(path.relative_to(ROOT)): reads
        for package in OUTSIDE
        for path in sorted((ROOT / package).rglob("*.py"))
        if (reads := pool_reads(path.read_text()))
    }
    assert found == {}, f"use store.db or an area's store (stores/), not the pool: {found}"
