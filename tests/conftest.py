"""Real PostgreSQL for every test that needs one.

One server per session: TEST_DATABASE_URL (a role allowed to CREATE DATABASE) or a throwaway
embedded cluster (`make test` runs pytest-xdist workers, each a session with a cluster of its
own). The schema is migrated once into a template database; each test gets its
own database cloned from it, so tests can race real transactions without seeing each other.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from conveyor.embedded import EmbeddedPostgres
from jobs.migrate import upgrade
from jobs.settings import DatabaseSettings, QueueSettings
from jobs.store import Store
from stores.keys import create_key
from tests.processes import Processes, System
from tests.support import eventually, with_database

TEMPLATE = f"conveyor_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
"""One template per pytest-xdist worker: workers that share a TEST_DATABASE_URL server must
not drop the template another is cloning."""


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    pg = EmbeddedPostgres(durable=False)
    try:
        yield pg.start()
    finally:
        pg.destroy()


async def _recreate(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    asyncio.run(_recreate(server_url, TEMPLATE))
    url = with_database(server_url, TEMPLATE)
    upgrade(url)
    asyncio.run(_open_quota(url))
    return url


async def _open_quota(url: str) -> None:
    """The tests' platform lets users run the demo kinds and queue without a cap: most tests
    drive the system as alice with them. tests/api/test_quotas.py puts the migration's
    default back and checks it; test_schema checks what the migration writes."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE submit_quota SET demo_kinds = true, max_queued = NULL WHERE owner = '*'"
        )
    finally:
        await conn.close()


@pytest.fixture
async def db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        yield with_database(server_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def queue_settings() -> QueueSettings:
    return QueueSettings(backoff_base_s=1.0, backoff_cap_s=60.0, backoff_jitter=0.2)


@pytest.fixture
async def store(db_url: str, queue_settings: QueueSettings) -> AsyncIterator[Store]:
    s = await Store.connect(
        db_url, settings=queue_settings, db=DatabaseSettings(db_pool_min=1, db_pool_max=20)
    )
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, as an application's own would be (no codecs registered)."""
    c = await asyncpg.connect(db_url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def procs(db_url: str, tmp_path: Path) -> AsyncIterator[Processes]:
    """Real `conveyor` processes against this test's database, killed at the end."""
    p = Processes(db_url, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
async def system(db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[System]:
    """A real `conveyor api` and `conveyor worker` on this test's database (tests/api,
    tests/browser). Streams re-read only when notified, so a test shows notifications work."""
    procs = Processes(db_url, tmp_path)
    try:
        base_url = procs.start_api(CONVEYOR_API_STREAM_POLL_S="30")
        procs.start_worker("--concurrency", "4", "--processes", "0", "--lease", "3s")

        async def registered() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM worker"))

        # Up before the test starts: a job's wait is then the queue's, not a start-up's.
        await eventually(registered, 60)
        keys = {
            "alice": await create_key(conn, "alice", "user"),
            "bob": await create_key(conn, "bob", "user"),
            "root": await create_key(conn, "root", "admin"),
        }
        yield System(base_url, keys, procs)
    finally:
        procs.stop_all()
