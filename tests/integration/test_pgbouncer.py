"""Conveyor through PgBouncer in transaction pooling mode (Debian's `pgbouncer`, which
`make test` installs): refused at start with what to set when DB_POOLER is not said,
`conveyor migrate` asking for a direct URL, and the API and workers working through it with
DB_POOLER=transaction, through a kill -9, every job succeeding once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conveyor.pgbouncer import PgBouncer, find_pgbouncer
from stores.keys import create_key
from tests.processes import Processes
from tests.support import eventually, with_database

pytestmark = pytest.mark.slow

if find_pgbouncer() is None:
    pytest.skip(
        "PgBouncer is not installed (Debian package pgbouncer; make test installs it as root)",
        allow_module_level=True,
    )


@pytest.fixture
def pooler(server_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test server; its URL (no database)."""
    with PgBouncer(server_url) as bouncer:
        yield bouncer.url


def cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args],
        env={**os.environ, "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def database(url: str, db_url: str) -> str:
    return with_database(url, urlsplit(db_url).path.lstrip("/"))


async def test_without_db_pooler_a_worker_and_migrate_say_what_to_set(pooler, db_url):
    through = database(pooler, db_url)
    worker = cli(through, "worker")
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "unsupported startup parameter" in worker.stderr
    assert "set DB_POOLER=transaction" in worker.stderr and "DATABASE_DIRECT_URL" in worker.stderr

    migrate = cli(through, "migrate", DB_POOLER="transaction")
    assert migrate.returncode == 2, migrate.stderr[-2000:]
    assert "set DATABASE_DIRECT_URL to Postgres itself" in migrate.stderr

    direct = cli(through, "migrate", DB_POOLER="transaction", DATABASE_DIRECT_URL=db_url)
    assert direct.returncode == 0, direct.stderr[-2000:]


@pytest.mark.parametrize("direct", [True, False], ids=["listening", "polling"])
async def test_the_api_and_workers_through_the_pooler_run_every_job_once_through_a_kill_9(
    pooler, db_url, conn, tmp_path, direct
):
    env = {"DB_POOLER": "transaction", **({"DATABASE_DIRECT_URL": db_url} if direct else {})}
    procs = Processes(database(pooler, db_url), tmp_path)
    try:
        key = await create_key(conn, "alice", "user")
        base_url = procs.start_api(**env)
        doomed = procs.start_worker(
            "--concurrency", "8", "--processes", "0", "--lease", "3s", **env
        )
        procs.start_worker("--concurrency", "8", "--processes", "0", "--lease", "3s", **env)
        auth = {"Authorization": f"Bearer {key}"}
        jobs = [{"kind": "demo.sleep", "payload": {"seconds": 0.05}} for _ in range(300)]
        with httpx.Client(base_url=base_url, headers=auth, timeout=30) as client:
            for start in range(0, len(jobs), 100):
                r = client.post("/v1/jobs/batch", json={"jobs": jobs[start : start + 100]})
                assert r.status_code == 201, r.text

            async def some_done_some_held() -> bool:
                # Killed while it holds leases: after a count of finished jobs alone, the
                # doomed worker could have been between claims (or the other had them all).
                return bool(
                    await conn.fetchval(
                        "SELECT (SELECT count(*) FROM job WHERE state = 'succeeded') >= 30"
                        " AND EXISTS (SELECT 1 FROM job j JOIN worker w ON w.id = j.lease_owner"
                        "             WHERE j.state = 'running' AND w.pid = $1)",
                        doomed.pid,
                    )
                )

            await eventually(some_done_some_held, 60)
            os.kill(doomed.pid, signal.SIGKILL)  # with jobs running under its leases
            doomed.wait(timeout=10)
            procs.start_worker("--concurrency", "8", "--processes", "0", "--lease", "3s", **env)

            async def all_done() -> bool:
                return (
                    await conn.fetchval("SELECT count(*) FROM job WHERE state = 'succeeded'") == 300
                )

            await eventually(all_done, 120)
            listed = client.get("/v1/jobs?state=succeeded&limit=500&brief=true")
            assert listed.status_code == 200 and len(listed.json()["jobs"]) == 300
        # Each job finished once, by the attempt that held it: a job run again had its
        # earlier attempt's lease expire with the killed worker (lease_lost, LeaseExpired).
        rows = await conn.fetch(
            "SELECT j.id, j.state, j.attempt, j.result, count(e.id) AS lost FROM job j"
            " LEFT JOIN job_event e ON e.job_id = j.id AND e.type = 'lease_lost' GROUP BY j.id"
        )
        assert len(rows) == 300 and {r["state"] for r in rows} == {"succeeded"}
        assert all(r["attempt"] == 1 + r["lost"] for r in rows)
        assert any(r["lost"] for r in rows)  # the kill caught some jobs mid-run
        logs = "".join(procs.log(p) for p in procs.procs)
        assert ("worker.listen_off" in logs) is not direct
        assert ("stream.listen_off" in logs) is not direct
    finally:
        procs.stop_all()
