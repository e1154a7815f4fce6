"""strategy.optimize and strategy.discover on a real standalone Spark cluster give the local
path's results, bit for bit.

A master and two workers (1 core, 1 GiB each) run as separate JVMs from the spark-class
script pyspark ships; one `conveyor worker` claims the `local` queue without Spark, another
the `spark` queue with SPARK_MASTER pointed at the cluster. The same jobs go through the API
to both; their stored runs and their results must be equal, floats included. The master's
status and the executors' own logs show the executors ran the tasks. Everything started here
is stopped at the end, pass or fail (the cluster's process groups, the Conveyor processes)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17 or newer) on PATH", allow_module_level=True)

from conveyor.spark_cluster import SparkCluster
from stores.keys import create_key
from tests.processes import Processes
from tests.support import eventually

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SYMBOLS = ["IBM", "MSFT"]
OPTIMIZE = {
    "symbols": SYMBOLS,
    "family": "ma_crossover",
    "grid": {
        "fast": {"start": 5, "stop": 40, "step": 5},
        "slow": {"start": 50, "stop": 200, "step": 25},
    },
    "split": 0.7,
}  # 8 × 7 = 56 parameter sets a symbol: 7 chunks of 8 each
DISCOVER = {"symbols": SYMBOLS, "budget": 48, "seed": 11, "folds": 3}
CHUNK = "8"  # SPARK_CHUNK: several Spark tasks per grid, so both executors get work


async def submit(client: httpx.AsyncClient, kind: str, payload: dict, queue: str) -> int:
    answer = await client.post("/v1/jobs", json={"kind": kind, "payload": payload, "queue": queue})
    assert answer.status_code == 201, answer.text
    job_id: int = answer.json()["id"]
    return job_id


async def finished(client: httpx.AsyncClient, job_id: int, timeout: float) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("succeeded", "dead", "cancelled") else None

    job = await eventually(ended, timeout, interval=0.2)
    assert job["state"] == "succeeded", job["errors"]
    return job


def without_ids(value: Any) -> Any:
    """A result with its strategy ids (row ids, which differ between two jobs) left out."""
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k != "strategy_id"}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


async def stored_runs(conn: asyncpg.Connection, job_id: int) -> list[tuple[Any, ...]]:
    """Every column of the job's runs but the row's and the job's ids and its insert time."""
    columns = [
        r["attname"]
        for r in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'strategy_run'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
        if r["attname"] not in ("id", "job_id", "created_at")
    ]
    rows = await conn.fetch(
        f"SELECT {', '.join(columns)} FROM strategy_run WHERE job_id = $1"
        " ORDER BY symbol, family, params::text, sample",
        job_id,
    )
    return [tuple(r.values()) for r in rows]


def tasks_run(cluster: SparkCluster, worker: int) -> int:
    """Tasks the executors on this Spark worker report having run (their own stderr)."""
    return sum(
        path.read_text(errors="replace").count("Executor: Running task")
        for path in cluster.executor_logs(worker)
    )


async def test_optimize_and_discover_on_a_standalone_cluster_match_the_local_path(
    procs: Processes, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    cluster = SparkCluster(tmp_path / "spark", workers=2, cores=1, memory="1g")
    try:
        booting = asyncio.create_task(asyncio.to_thread(cluster.start))  # while local runs
        base_url = procs.start_api()
        key = await create_key(conn, "root", "admin")
        local = procs.start_worker(
            "--queues", "local", "--processes", "1", "--concurrency", "1", "--no-cron"
        )
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client:
            ingest = {"symbols": SYMBOLS, "start": "2004-01-01", "end": "2012-12-31"}
            await finished(client, await submit(client, "prices.ingest", ingest, "local"), 60)
            jobs = {
                (kind, queue): await submit(client, kind, payload, queue)
                for queue in ("local", "spark")
                for kind, payload in (
                    ("strategy.optimize", OPTIMIZE),
                    ("strategy.discover", DISCOVER),
                )
            }
            master = await booting
            on_spark = procs.start_worker(
                "--queues",
                "spark",
                "--processes",
                "1",
                "--concurrency",
                "1",
                "--no-cron",
                SPARK_MASTER=master,
                SPARK_CHUNK=CHUNK,
                SPARK_LOCAL_IP="127.0.0.1",
            )
            results = {key: await finished(client, job, 150) for key, job in jobs.items()}

            running = cluster.status()
            [app] = [a for a in running["activeapps"] if a["name"] == "conveyor-research"]
            assert app["cores"] == 2  # one executor on each worker

            for kind in ("strategy.optimize", "strategy.discover"):
                mine, theirs = results[(kind, "spark")], results[(kind, "local")]
                assert without_ids(mine["result"]) == without_ids(theirs["result"]), kind
                runs = await stored_runs(conn, mine["id"])
                assert runs == await stored_runs(conn, theirs["id"]), kind
            assert results[("strategy.optimize", "spark")]["result"]["symbols"]["IBM"]["runs"] == (
                2 * 8 * 7
            )
            assert await conn.fetchval(
                "SELECT count(*) FROM strategy_run WHERE job_id = $1",
                results[("strategy.discover", "spark")]["id"],
            ), "discovery stored nothing: the comparison above compared nothing"

        # each worker's executor ran tasks, by its own log
        assert [tasks_run(cluster, n) > 0 for n in range(2)] == [True, True], [
            tasks_run(cluster, n) for n in range(2)
        ]
        local.kill()
        on_spark.kill()  # its pool child dies with it, and the driver's JVM with the child

        def app_ended() -> bool:
            done = cluster.status()["completedapps"]
            return any(a["id"] == app["id"] for a in done)

        await eventually(app_ended, 30, interval=0.5)
    finally:
        cluster.stop()
