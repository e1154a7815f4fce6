"""The console script as a user runs it: real processes, a real embedded cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from jobs.embedded import HOW_TO_GET_POSTGRES, find_bin_dir, free_port
from jobs.errors import PostgresNotFound
from jobs.migrate import head_revision
from jobs.model import NewJob
from jobs.transitions import Success
from tests.support import SCHEMA_TABLES, eventually

CONVEYOR = [sys.executable, "-m", "conveyor.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(extra)
    return env


def test_migrate_without_a_database_url_says_what_to_do():
    proc = subprocess.run(
        [*CONVEYOR, "migrate"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "DATABASE_URL is not set" in proc.stderr
    assert "conveyor dev" in proc.stderr


async def test_migrate_applies_the_schema(server_url):
    admin = await asyncpg.connect(server_url)
    await admin.execute("DROP DATABASE IF EXISTS cli_migrate WITH (FORCE)")
    await admin.execute("CREATE DATABASE cli_migrate")
    url = server_url.rsplit("/", 1)[0] + "/cli_migrate"
    try:
        proc = subprocess.run(
            [*CONVEYOR, "migrate"],
            env=_env(DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "db.migrated" in proc.stderr
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        await conn.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS cli_migrate WITH (FORCE)")
        await admin.close()


@pytest.mark.slow
async def test_dev_starts_an_embedded_postgres_migrates_and_cleans_up_on_ctrl_c():
    port = free_port()
    proc = subprocess.Popen(
        [*CONVEYOR, "dev", "--port", str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # not read while the test runs: a full pipe would block
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Stop with Ctrl-C"):
                break
            assert line, "dev exited early"
        url = next(x.split("database:")[1].split()[0] for x in lines if "database:" in x)
        conn = await asyncpg.connect(url)
        tables = await conn.fetchval(
            "SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables "
            "WHERE schemaname = 'public'"
        )
        data_dir = await conn.fetchval("SHOW data_directory")

        async def worker_registered() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM worker"))

        await eventually(worker_registered, 60)
        job_id = await conn.fetchval(
            "INSERT INTO job (kind, payload) VALUES ('demo.noop', '{}') RETURNING id"
        )

        async def job_done() -> bool:
            state = await conn.fetchval("SELECT state FROM job WHERE id = $1", job_id)
            return state == "succeeded"

        await eventually(job_done, 30)
        await conn.close()

        key = next(x.rsplit(" ", 1)[1].strip() for x in lines if "admin key" in x)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def api_up() -> bool:
                try:
                    return (await client.get("/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(api_up, 60)
            r = await client.post(
                "/v1/jobs",
                json={"kind": "demo.noop"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 201, r.text
            submitted = r.json()["id"]

            async def api_job_done() -> bool:
                got = await client.get(
                    f"/v1/jobs/{submitted}", headers={"Authorization": f"Bearer {key}"}
                )
                return got.json()["state"] == "succeeded"

            await eventually(api_job_done, 30)
        assert tables == SCHEMA_TABLES

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Stopped the embedded Postgres" in out
        assert not Path(data_dir).exists()
        with pytest.raises(OSError):
            await asyncpg.connect(url, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_missing_server_binaries_give_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.delenv("PG_BIN_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresNotFound) as err:
        find_bin_dir(search=(str(tmp_path / "nowhere" / "*"),))
    assert str(err.value) == HOW_TO_GET_POSTGRES
    assert (
        "DATABASE_URL" in HOW_TO_GET_POSTGRES
        and "apt-get install postgresql" in HOW_TO_GET_POSTGRES
    )


def test_pg_bin_dir_points_at_the_binaries(monkeypatch, tmp_path):
    real = find_bin_dir()
    monkeypatch.setenv("PG_BIN_DIR", str(real))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_bin_dir(search=()) == real


async def test_prune_deletes_finished_jobs_older_than_their_state_s_age(db_url, store):
    ids = [(await store.enqueue(NewJob(kind="k"))).id for _ in range(3)]
    claimed = await store.claim(["default"], 3, "w", 30)
    for job in claimed[:2]:  # two succeed, the third stays running
        assert await store.complete(job, Success(None))
    await store.pool.execute(
        "UPDATE job SET finished_at = now() - interval '3 days' WHERE id = $1", ids[0]
    )
    proc = subprocess.run(
        [*CONVEYOR, "prune", "--succeeded", "2d"],
        env=_env(DATABASE_URL=db_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "succeeded: 1" in proc.stdout
    left = await store.pool.fetch("SELECT id FROM job ORDER BY id")
    assert [r["id"] for r in left] == ids[1:]  # the recent success and the running job stay


async def test_prune_keeps_leaderboards_unless_asked_and_then_the_latest(db_url, store):
    for job_id, days_old in ((1, 20), (2, 10)):
        await store.pool.execute(
            "INSERT INTO leaderboard_snapshot (job_id, metric, created_at)"
            " VALUES ($1, 'sharpe', now() - make_interval(days => $2))",
            job_id,
            days_old,
        )

    def prune(*options: str) -> str:
        proc = subprocess.run(
            [*CONVEYOR, "prune", *options],
            env=_env(DATABASE_URL=db_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "leaderboard" not in prune()  # by default every snapshot is kept
    assert await store.pool.fetchval("SELECT count(*) FROM leaderboard_snapshot") == 2
    assert "leaderboard snapshots: 1" in prune("--leaderboards", "1d")
    left = await store.pool.fetch("SELECT job_id FROM leaderboard_snapshot")
    assert [r["job_id"] for r in left] == [2]  # the latest stays, though older than a day
