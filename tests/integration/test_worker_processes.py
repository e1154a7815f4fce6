"""`conveyor worker` as real processes against real Postgres: kill -9, SIGTERM, cancel,
retries, timeouts, and a Postgres restart. Outcomes are checked in the database."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime

import httpx
import pytest

from conveyor.embedded import EmbeddedPostgres, free_port
from jobs.migrate import upgrade
from jobs.model import DEFAULT_MAX_ATTEMPTS, JobState, NewJob
from jobs.store import Store
from tests.processes import Processes
from tests.support import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(procs: Processes) -> Processes:
    return procs


async def states(store: Store) -> dict[str, int]:
    rows = await store.pool.fetch("SELECT state, count(*) AS n FROM job GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


async def wait_running(store: Store, n: int, timeout: float = 30) -> None:
    async def enough() -> bool:
        return (await states(store)).get("running", 0) >= n

    await eventually(enough, timeout)


async def test_kill_9_loses_no_job_and_finishes_none_twice(store, workers):
    ids = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 1.5}) for _ in range(6)]
        )
    ]
    doomed = workers.start_worker("--lease", "2s", "--concurrency", "6")
    await wait_running(store, 6)
    held_by = {r["lease_owner"] for r in await store.pool.fetch("SELECT lease_owner FROM job")}
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    workers.start_worker("--lease", "2s", "--concurrency", "6")

    async def all_done() -> bool:
        return (await states(store)) == {"succeeded": 6}

    await eventually(all_done, 60)
    for job_id in ids:
        job = await store.get(job_id)
        assert job.attempt == 2  # the first attempt died with its worker, the second finished
        assert [e["type"] for e in job.errors] == ["LeaseExpired"]
        assert job.result == {"slept_s": 1.5}
    events = await store.pool.fetch("SELECT job_id, type FROM job_event ORDER BY id")
    assert sorted(e["job_id"] for e in events if e["type"] == "lease_lost") == ids
    assert len(held_by) == 1  # one worker held them all before the kill


async def test_sigterm_finishes_or_releases_and_exits_zero(store, workers):
    short = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 0.5}) for _ in range(3)]
        )
    ]
    long = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 60}) for _ in range(3)]
        )
    ]
    proc = workers.start_worker("--grace", "2s", "--concurrency", "6", "--processes", "0")
    await wait_running(store, 6)
    proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(proc.wait, 20)
    assert rc == 0, workers.log(proc)
    for job_id in short:
        assert (await store.get(job_id)).state is JobState.SUCCEEDED
    for job_id in long:
        job = await store.get(job_id)
        assert job.state is JobState.QUEUED  # released: another worker will take it
        assert job.max_attempts == 6 and job.errors == []  # no attempt burned
    assert (await states(store)).get("running", 0) == 0
    assert await store.pool.fetchval("SELECT count(*) FROM worker") == 0
    assert '"worker.stopped"' in workers.log(proc)


@pytest.mark.parametrize("processes", ["1", "0"])  # CPU-bound in the pool, or in a thread
async def test_cancel_running_async_and_cpu_jobs_within_two_heartbeats(store, workers, processes):
    sleep = (await store.enqueue(NewJob(kind="demo.sleep", payload={"seconds": 60}))).id
    cpu = (await store.enqueue(NewJob(kind="demo.cpu", payload={"n": 5_000_000_000}))).id
    workers.start_worker("--lease", "3s", "--processes", processes)
    await wait_running(store, 2, timeout=60)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    for job_id in (sleep, cpu):
        assert (await store.cancel(job_id)).requested

    async def both_cancelled() -> bool:
        jobs = [await store.get(i) for i in (sleep, cpu)]
        return all(j.state is JobState.CANCELLED for j in jobs)

    await eventually(both_cancelled, 10)
    assert loop.time() - asked <= 2 * 1.0 + 1.5  # two heartbeats (lease/3 = 1 s) and slack
    for job_id in (sleep, cpu):
        assert (await store.events(job_id))[-1].type == "cancelled"


async def test_failing_jobs_retry_with_backoff_then_succeed_or_die(store, workers):
    recovers = (await store.enqueue(NewJob(kind="demo.fail", payload={"times": 2}))).id
    hopeless = (
        await store.enqueue(NewJob(kind="demo.fail", payload={"times": 99}, max_attempts=4))
    ).id
    workers.start_worker()

    async def settled() -> bool:
        a, b = await store.get(recovers), await store.get(hopeless)
        return a.state is JobState.SUCCEEDED and b.state is JobState.DEAD

    await eventually(settled, 60)
    ok = await store.get(recovers)
    assert ok.attempt == 3 and ok.result == {"succeeded_on_attempt": 3}
    dead = await store.get(hopeless)
    assert [e["attempt"] for e in dead.errors] == [1, 2, 3, 4]
    assert {e["type"] for e in dead.errors} == {"RuntimeError"}
    assert all("demo.fail" in e["message"] and e["traceback"] for e in dead.errors)
    # retry delays follow min(cap, base * 2**attempt) ± 20 %: 0.2 s, 0.4 s, 0.8 s
    scheduled = [
        (e.data["attempt"], datetime.fromisoformat(e.data["run_at"]), e.at)
        for e in await store.events(hopeless)
        if e.type == "retry_scheduled"
    ]
    assert [a for a, _, _ in scheduled] == [1, 2, 3]
    for attempt, run_at, at in scheduled:
        # both from the database's clock in the statement that requeued the job
        delay = (run_at - at).total_seconds()
        nominal = min(2.0, 0.1 * 2**attempt)
        assert nominal * 0.8 - 1e-6 <= delay <= nominal * 1.2 + 1e-6


async def test_unknown_kinds_and_bad_payloads_end_dead_and_the_worker_carries_on(store, workers):
    unknown = (await store.enqueue(NewJob(kind="prices.nonexistent"))).id
    bad = (await store.enqueue(NewJob(kind="demo.sleep", payload={"seconds": "soon"}))).id
    fine = (await store.enqueue(NewJob(kind="demo.noop"))).id
    proc = workers.start_worker()

    async def settled() -> bool:
        return (await store.get(fine)).state is JobState.SUCCEEDED and all(
            [(await store.get(i)).state is JobState.DEAD for i in (unknown, bad)]
        )

    await eventually(settled, 30)
    [error] = (await store.get(unknown)).errors
    assert error["type"] == "UnknownKind" and "prices.nonexistent" in error["message"]
    assert "demo.noop" in error["message"]  # says which kinds exist
    [error] = (await store.get(bad)).errors
    assert error["type"] == "InvalidPayload" and "seconds" in error["message"]
    assert proc.poll() is None


async def test_a_second_signal_exits_at_once_and_the_reaper_recovers(store, workers):
    job_id = (await store.enqueue(NewJob(kind="demo.sleep", payload={"seconds": 2}))).id
    first = workers.start_worker("--lease", "2s", "--grace", "60s")
    await wait_running(store, 1)
    first.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    first.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(first.wait, 10)
    assert rc == 1  # did not wait out the 60 s grace
    assert (await store.get(job_id)).state is JobState.RUNNING  # its lease is still out
    workers.start_worker("--lease", "2s")

    async def done() -> bool:
        return (await store.get(job_id)).state is JobState.SUCCEEDED

    await eventually(done, 30)
    job = await store.get(job_id)
    assert job.attempt == 2 and [e["type"] for e in job.errors] == ["LeaseExpired"]


async def test_a_job_over_its_timeout_is_stopped_and_retried_then_dead(store, workers):
    job_id = (
        await store.enqueue(
            NewJob(kind="demo.sleep", payload={"seconds": 30}, timeout_s=1, max_attempts=2)
        )
    ).id
    workers.start_worker()

    async def dead() -> bool:
        return (await store.get(job_id)).state is JobState.DEAD

    await eventually(dead, 30)
    job = await store.get(job_id)
    assert [(e["attempt"], e["type"]) for e in job.errors] == [(1, "Timeout"), (2, "Timeout")]


# "immediate" is a crash: no shutdown checkpoint, the server recovers from its WAL, and every
# connection is cut mid-statement (claims, finishes and heartbeats in flight among them).
@pytest.mark.parametrize("stop", ["fast", "immediate"])
async def test_postgres_restart_loses_and_duplicates_nothing(tmp_path, stop):
    pg = EmbeddedPostgres(durable=True)
    url = pg.start()
    try:
        await asyncio.to_thread(upgrade, url)
        store = await Store.connect(url)
        workers = Processes(url, tmp_path)
        try:
            await store.enqueue_many(
                [NewJob(kind="demo.sleep", payload={"seconds": 0.01}) for _ in range(2000)]
            )
            workers.start_worker("--lease", "5s", "--concurrency", "8")
            workers.start_worker("--lease", "5s", "--concurrency", "8")

            async def some_done() -> bool:
                return (await states(store)).get("succeeded", 0) >= 300

            await eventually(some_done, 60)
            await asyncio.to_thread(pg.stop, stop)  # pg_ctl stop -m fast / immediate
            await asyncio.to_thread(pg.start)

            seen: list[object] = []

            async def all_done() -> bool:
                try:
                    now = await states(store)
                except Exception as exc:  # the test's own pool reconnects on the next try
                    seen.append(repr(exc))
                    return False
                seen.append(now)
                return now == {"succeeded": 2000}

            try:
                await eventually(all_done, 120)
            except AssertionError:
                raise AssertionError(f"last states: {seen[-3:]}") from None
            assert all(p.poll() is None for p in workers.procs)  # they rode it out
            # Every attempt after the first is explained by a recorded failure (a lease lost
            # in the outage): no attempt ran and finished without leaving its trace.
            unexplained = await store.pool.fetchval(
                "SELECT count(*) FROM job WHERE attempt <> jsonb_array_length(errors) + 1"
            )
            assert unexplained == 0
            assert await store.pool.fetchval("SELECT count(*) FROM job") == 2000
        finally:
            workers.stop_all()
            await store.close()
    finally:
        pg.destroy()


async def test_a_worker_and_an_api_started_before_their_database_wait_for_it(tmp_path):
    # Compose or a deploy may start them first, or Postgres restart as they start: they wait
    # (saying so in the log), then serve, rather than exit.
    pg = EmbeddedPostgres(durable=False)
    url = pg.start()
    try:
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(pg.stop)
        procs = Processes(url, tmp_path)
        try:
            worker = procs.start_worker()
            api = procs._start(["api", "--port", str(port := free_port())], {})

            def waiting() -> bool:
                told = procs.log(worker)
                return (
                    '"worker.db_unavailable"' in told
                    and '"service": "connect"' in told
                    and '"api.database_unavailable"' in procs.log(api)
                )

            await eventually(waiting, 30)
            await asyncio.sleep(1.0)  # a few tries later, both are still there
            assert worker.poll() is None and api.poll() is None
            await asyncio.to_thread(pg.start)
            store = await Store.connect(url)
            try:
                job_id = (await store.enqueue(NewJob(kind="demo.noop"))).id

                async def done() -> bool:
                    return (await store.get(job_id)).state is JobState.SUCCEEDED

                await eventually(done, 30)

                async def ready() -> bool:
                    async with httpx.AsyncClient() as http:
                        try:
                            answer = await http.get(f"http://127.0.0.1:{port}/ready")
                        except httpx.TransportError:
                            return False
                    return answer.status_code == 200

                await eventually(ready, 30)
            finally:
                await store.close()
        finally:
            procs.stop_all()
    finally:
        pg.destroy()


async def test_jobs_claimed_ahead_behind_a_long_one_are_handed_to_an_idle_worker(store, workers):
    # One slot, a 3 s lease (a heartbeat a second). Instant jobs teach the worker that its
    # slot frees up faster than a claim's round trip, so it claims ahead of it.
    busy = workers.start_worker("--concurrency", "1", "--lease", "3s", "--processes", "0")
    await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(50)])

    async def trained() -> bool:
        return (await states(store)).get("succeeded", 0) == 50

    await eventually(trained, 30)
    long, *quick = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 12})]
            + [NewJob(kind="demo.noop") for _ in range(5)]
        )
    ]
    # The long one in the slot, quick ones in its buffer: as many as the worker learnt it
    # could run during a claim's round trip (all five on a quiet machine, fewer on a busy
    # one, as CI's once was).
    await wait_running(store, 2)
    running = {
        r["id"] for r in await store.pool.fetch("SELECT id FROM job WHERE state = 'running'")
    }
    buffered = running & set(quick)
    assert long in running and buffered
    workers.start_worker("--concurrency", "4", "--lease", "3s", "--processes", "0")

    async def quick_done() -> bool:
        return all([(await store.get(i)).state is JobState.SUCCEEDED for i in quick])

    await eventually(quick_done, 8)
    assert (await store.get(long)).state is JobState.RUNNING  # they did not wait for it
    for job_id in quick:
        job = await store.get(job_id)
        assert job.errors == []
        reasons = [e.data["reason"] for e in await store.events(job_id) if e.type == "released"]
        # handed back (once if it was seen buffered above), no attempt used for it
        assert reasons == ["not started within a heartbeat of its claim"] * len(reasons)
        assert (len(reasons) == 1) if job_id in buffered else (len(reasons) <= 1)
        assert job.max_attempts == DEFAULT_MAX_ATTEMPTS + len(reasons)
    assert busy.poll() is None


async def test_worker_options_come_from_the_environment_and_the_command_line_wins(store, workers):
    from_env = workers.start_worker(
        CONVEYOR_WORKER_CONCURRENCY="7", CONVEYOR_WORKER_QUEUES="a, b", CONVEYOR_LOG_LEVEL="WARNING"
    )
    from_flag = workers.start_worker("--concurrency", "3", CONVEYOR_WORKER_CONCURRENCY="7")

    async def registered() -> bool:
        return await store.pool.fetchval("SELECT count(*) FROM worker") == 2

    await eventually(registered, 30)
    rows = await store.pool.fetch("SELECT pid, queues, concurrency FROM worker")
    seen = {r["pid"]: (r["queues"], r["concurrency"]) for r in rows}
    assert seen[from_env.pid] == (["a", "b"], 7)
    assert seen[from_flag.pid] == (["default"], 3)
    job_id = (await store.enqueue(NewJob(kind="demo.noop", queue="b"))).id

    async def done() -> bool:
        return (await store.get(job_id)).state is JobState.SUCCEEDED

    await eventually(done, 30)
    assert '"job.claimed"' not in workers.log(from_env)  # WARNING: no per-job lines
    assert '"worker.started"' not in workers.log(from_env)


async def test_a_job_announced_while_every_slot_is_busy_starts_when_one_frees(store, workers):
    # A 5 s poll, so only the NOTIFY (or the fetcher knowing there may be more) can start it
    # soon after the slot frees.
    workers.start_worker("--concurrency", "1", "--processes", "0", "--poll", "5s")
    busy = (await store.enqueue(NewJob(kind="demo.sleep", payload={"seconds": 1}))).id
    await wait_running(store, 1)
    waiting = (await store.enqueue(NewJob(kind="demo.noop"))).id

    async def done() -> bool:
        return (await store.get(waiting)).state is JobState.SUCCEEDED

    await eventually(done, 15)
    freed = (await store.get(busy)).finished_at
    started = (await store.get(waiting)).started_at
    assert freed is not None and started is not None
    assert (started - freed).total_seconds() < 0.5  # not the next poll, seconds later
