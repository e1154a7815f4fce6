"""The console script as a user runs it: real processes, a real embedded cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from conveyor.embedded import HOW_TO_GET_POSTGRES, PostgresNotFound, find_bin_dir, free_port
from jobs.migrate import head_revision
from jobs.model import NewJob
from jobs.transitions import Success
from tests.support import eventually

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
    assert "make run" in proc.stderr


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


def _start_dev(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`conveyor dev` up to its "Stop with Ctrl-C" line; the process and what it printed."""
    proc = subprocess.Popen(
        [*CONVEYOR, "dev", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # not read while the test runs: a full pipe would block
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("Stop with Ctrl-C"):
            return proc, lines
        assert line, f"dev exited early: {''.join(lines)}"
    proc.kill()
    raise AssertionError("dev did not come up in 120 s")


def _printed(lines: list[str], label: str) -> str:
    return next(x.split(label, 1)[1].split()[0] for x in lines if label in x)


def _stop_dev(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    return out


@pytest.mark.slow
async def test_dev_keeps_its_data_between_runs_until_fresh(tmp_path):
    # Under the system temp folder, not pytest's private one: run as root, the cluster's
    # own user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="conveyor-dev-test-"))
    folder.chmod(0o755)
    env = _env(CONVEYOR_DEV_DIR=str(folder / ".conveyor"))
    port = free_port()
    proc, lines = _start_dev(env, "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        # "up" is printed once a request works: no waiting here
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
        url, key = _printed(lines, "database:"), _printed(lines, "admin key:")
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{base}/v1/jobs", json={"kind": "demo.noop"}, headers=auth, timeout=10)
        assert r.status_code == 201, r.text
        submitted = r.json()["id"]

        async def done() -> bool:
            got = httpx.get(f"{base}/v1/jobs/{submitted}", headers=auth, timeout=10)
            return got.json()["state"] == "succeeded"

        await eventually(done, 60)
        # database commands find the running dev cluster without DATABASE_URL
        made = subprocess.run(
            [*CONVEYOR, "keys", "create", "--name", "kept"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        out = _stop_dev(proc)
        assert "its data stays in" in out
        with pytest.raises(OSError):
            await asyncpg.connect(url, timeout=2)
        outside = subprocess.run(
            [*CONVEYOR, "keys", "list"], env=env, capture_output=True, text=True, timeout=60
        )
        assert outside.returncode == 2 and "make run" in outside.stderr  # not running now

        proc, lines = _start_dev(env, "--port", str(port))
        assert _printed(lines, "admin key:") == key  # the same key, still accepted
        conn = await asyncpg.connect(_printed(lines, "database:"))
        try:
            assert await conn.fetchval("SELECT state FROM job WHERE id = $1", submitted) == (
                "succeeded"
            )
            assert await conn.fetchval("SELECT count(*) FROM api_key WHERE name = 'kept'") == 1
            ingests = await conn.fetchval(
                "SELECT count(*) FROM job WHERE idempotency_key = 'dev-sample-prices:adjusted'"
            )
            assert ingests == 1  # the sample prices once, not on every start
        finally:
            await conn.close()
        _stop_dev(proc)

        proc, lines = _start_dev(env, "--port", str(port), "--fresh")
        assert any("--fresh" in x for x in lines)
        assert _printed(lines, "admin key:") != key
        conn = await asyncpg.connect(_printed(lines, "database:"))
        try:
            assert await conn.fetchval("SELECT count(*) FROM api_key WHERE name = 'kept'") == 0
        finally:
            await conn.close()
        _stop_dev(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def test_dev_on_a_taken_port_says_how_to_choose_another(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*CONVEYOR, "dev", "--port", str(port)],
            env=_env(CONVEYOR_DEV_DIR=str(tmp_path / ".conveyor")),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert f"port {port} is taken" in proc.stderr and "PORT=" in proc.stderr


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
