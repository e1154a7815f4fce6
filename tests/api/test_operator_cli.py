"""The operator commands as a user runs them: `conveyor submit|watch|jobs|dead|queues|
workers` processes against a real `conveyor api` and `conveyor worker`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def conveyor(live, who: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    client, auth = live
    env = {
        **os.environ,
        "CONVEYOR_API_URL": str(client.base_url),
        "CONVEYOR_API_KEY": auth[who]["Authorization"].split(" ", 1)[1],
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


async def run(live, who: str, *args: str, stdin: str | None = None):
    return await asyncio.to_thread(conveyor, live, who, *args, stdin=stdin)


async def test_submit_and_watch_until_success_then_list_and_show(live):
    payload = json.dumps({"steps": 3, "interval_s": 0.3})
    r = await run(live, "alice", "submit", "demo.progress", "--payload", payload, "--watch")
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout.split()[1])
    assert f"job {job_id} succeeded" in r.stdout
    assert "100%" in r.stderr  # the progress bar reached the end

    listed = await run(live, "alice", "jobs", "list", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job_id]
    shown = json.loads((await run(live, "alice", "jobs", "show", str(job_id))).stdout)
    assert shown["result"] == {"steps": 3}
    table = await run(live, "alice", "jobs", "list")
    assert "demo.progress" in table.stdout and "succeeded" in table.stdout
    # another user sees nothing of it
    assert json.loads((await run(live, "bob", "jobs", "list", "--json")).stdout) == []
    missing = await run(live, "bob", "jobs", "show", str(job_id))
    assert missing.returncode == 1 and "404" in missing.stderr


async def test_a_dead_job_exits_3_and_is_retried_from_the_dead_letters(live):
    r = await run(
        live,
        "alice",
        "submit",
        "demo.fail",
        "--payload",
        '{"times": 9}',
        "--max-attempts",
        "1",
        "--watch",
    )
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "last error:" in r.stderr
    job_id = int(r.stdout.split()[1])
    dead = json.loads((await run(live, "alice", "dead", "list", "--json")).stdout)
    assert [j["id"] for j in dead] == [job_id]
    retried = await run(live, "alice", "dead", "retry", str(job_id))
    assert retried.returncode == 0 and "queued" in retried.stdout
    bulk = await run(live, "alice", "dead", "retry", "--all", "--yes")
    assert bulk.returncode == 1 and "403" in bulk.stderr  # bulk replay is for admins


async def test_cancel_a_running_job_and_watch_exits_4(live):
    r = await run(live, "alice", "submit", "demo.sleep", "--payload", '{"seconds": 30}', "--json")
    job_id = json.loads(r.stdout)["id"]
    await asyncio.sleep(1)
    cancelled = await run(live, "alice", "jobs", "cancel", str(job_id))
    assert cancelled.returncode == 0, cancelled.stderr
    watched = await run(live, "alice", "watch", str(job_id))
    assert watched.returncode == 4 and f"job {job_id} cancelled" in watched.stdout


async def test_queues_workers_and_a_bad_key(live):
    queues = json.loads((await run(live, "root", "queues", "--json")).stdout)
    assert isinstance(queues, list)
    workers = json.loads((await run(live, "root", "workers", "--json")).stdout)
    assert len(workers) == 1 and workers[0]["concurrency"] == 4
    client, auth = live
    with_mallory = (client, {**auth, "mallory": {"Authorization": "Bearer nope"}})
    bad = conveyor(with_mallory, "mallory", "queues")
    assert bad.returncode == 1 and "401" in bad.stderr and "unknown or revoked" in bad.stderr


async def test_an_operator_pauses_limits_and_resumes_a_queue_from_the_cli(live):
    paused = await run(live, "root", "queues", "pause", "reports")
    assert paused.returncode == 0, paused.stderr
    assert "reports: paused, no limit" in paused.stdout
    limited = await run(live, "root", "queues", "limit", "reports", "2")
    assert "reports: paused, at most 2 running" in limited.stdout
    listed = json.loads((await run(live, "root", "queues", "--json")).stdout)
    assert {(q["queue"], q["paused"], q["concurrency"]) for q in listed} >= {("reports", True, 2)}
    resumed = await run(live, "root", "queues", "resume", "reports")
    assert "reports: claimed, at most 2 running" in resumed.stdout
    lifted = await run(live, "root", "queues", "limit", "reports", "none")
    assert "reports: claimed, no limit" in lifted.stdout
    refused = await run(live, "alice", "queues", "pause", "reports")
    assert refused.returncode == 1 and "403" in refused.stderr
    bad = await run(live, "root", "queues", "limit", "reports", "lots")
    assert bad.returncode == 2 and "a whole number, or none" in bad.stderr


async def test_an_operator_limits_a_kind_and_sets_its_rate_from_the_cli(live):
    limited = await run(
        live, "root", "kinds", "limit", "strategy.optimize", "4", "--per-owner", "2"
    )
    assert limited.returncode == 0, limited.stderr
    assert "strategy.optimize" in limited.stdout and "key:root" in limited.stdout
    rated = await run(
        live, "root", "kinds", "rate", "prices.ingest", "2000", "3600", "--per", "payload.provider"
    )
    assert rated.returncode == 0, rated.stderr
    assert "2000 / 3600 s per payload.provider" in rated.stdout
    listed = {k["kind"]: k for k in json.loads((await run(live, "root", "kinds", "--json")).stdout)}
    assert listed["strategy.optimize"]["concurrency"] == 4
    assert listed["strategy.optimize"]["owner_concurrency"] == 2
    assert listed["prices.ingest"]["rate_limit"] == {
        "allowed": 2000,
        "period_s": 3600,
        "partition": "payload.provider",
    }
    table = await run(live, "alice", "kinds")
    assert "2000 / 3600 s per payload.provider" in table.stdout
    lifted = await run(live, "root", "kinds", "rate", "prices.ingest", "none")
    assert lifted.returncode == 0 and "payload.provider" not in lifted.stdout
    no_window = await run(live, "root", "kinds", "rate", "prices.ingest", "5")
    assert no_window.returncode == 2 and "give the window in seconds" in no_window.stderr
    bad = await run(live, "root", "kinds", "rate", "prices.ingest", "5", "60", "--per", "host")
    assert bad.returncode == 1 and "422" in bad.stderr and "partition" in bad.stderr
    refused = await run(live, "alice", "kinds", "rate", "prices.ingest", "5", "60")
    assert refused.returncode == 1 and "403" in refused.stderr


async def test_an_operator_sets_and_clears_a_users_quota_from_the_cli(live):
    made = await run(live, "root", "quotas", "set", "key:alice", "--max-queued", "0", "--no-demo")
    assert made.returncode == 0, made.stderr
    listed = json.loads((await run(live, "root", "quotas", "--json")).stdout)
    mine = next(q for q in listed if q["owner"] == "key:alice")
    assert (mine["max_queued"], mine["demo_kinds"]) == (0, False)
    assert mine["priority_min"] == listed[0]["priority_min"]  # the rest from `*`
    await asyncio.sleep(1.1)  # the API's cached quota for alice
    refused = await run(live, "alice", "submit", "demo.noop")
    assert refused.returncode == 1 and "403" in refused.stderr and "demo kinds" in refused.stderr
    narrowed = await run(live, "root", "quotas", "set", "key:alice", "--priority", "0..3")
    assert "key:alice" in narrowed.stdout
    bad = await run(live, "root", "quotas", "set", "key:alice", "--priority", "high")
    assert bad.returncode == 2 and "MIN..MAX" in bad.stderr
    cleared = await run(live, "root", "quotas", "clear", "key:alice")
    assert cleared.returncode == 0 and "default quota" in cleared.stdout
    listed = json.loads((await run(live, "root", "quotas", "--json")).stdout)
    assert [q["owner"] for q in listed] == ["*"]
    assert (await run(live, "alice", "quotas")).returncode == 1  # an admin's
