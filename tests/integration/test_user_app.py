"""Kinds from the user's own package (`tests/userapp/acme_jobs`, not one of Conveyor's):
loaded with `--app` / CONVEYOR_APP by real `conveyor api` and `conveyor worker` processes,
validated and documented by the API, run by the worker (an async kind on its loop, a
CPU-bound one in its pool)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stores.keys import create_key
from tests.support import eventually

pytestmark = pytest.mark.slow

USERAPP = str(Path(__file__).resolve().parents[1] / "userapp")
APP = "acme_jobs.kinds:app"


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (USERAPP, os.environ.get("PYTHONPATH")) if p)


async def test_a_users_kinds_are_validated_documented_and_run(procs, conn):
    env = {"PYTHONPATH": _pythonpath()}
    base = procs.start_api(CONVEYOR_APP=APP, **env)
    worker = procs.start_worker("--app", APP, "--processes", "1", **env)
    key = await create_key(conn, "team", "user")
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as client:
        kinds = {k["kind"]: k for k in (await client.get("/v1/kinds")).json()}
        assert {"acme.greet", "acme.primes", "demo.noop"} <= set(kinds)
        assert kinds["acme.greet"]["payload_schema"]["properties"]["name"]["maxLength"] == 40
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert "SubmitJob_Greet" in schema and "SubmitJob_Primes" in schema

        bad = await client.post("/v1/jobs", json={"kind": "acme.greet", "payload": {}})
        assert bad.status_code == 422 and "payload.name" in bad.json()["error"]["message"]

        greet = await client.post(
            "/v1/jobs", json={"kind": "acme.greet", "payload": {"name": "ada", "times": 3}}
        )
        primes = await client.post(
            "/v1/jobs", json={"kind": "acme.primes", "payload": {"below": 100_000}}
        )
        nobody = await client.post(
            "/v1/jobs", json={"kind": "acme.greet", "payload": {"name": "nobody"}}
        )
        ids = [r.json()["id"] for r in (greet, primes, nobody)]

        async def finished() -> bool:
            states = [(await client.get(f"/v1/jobs/{i}")).json()["state"] for i in ids]
            return all(s in ("succeeded", "dead") for s in states)

        await eventually(finished, 60)
        done = [(await client.get(f"/v1/jobs/{i}")).json() for i in ids]
        assert done[0]["state"] == "succeeded"
        assert done[0]["result"]["greeting"] == "hello ada" and done[0]["progress"] == 100
        assert done[0]["result"]["pid"] == worker.pid  # async: on the worker's own loop
        assert done[1]["state"] == "succeeded" and done[1]["result"]["count"] == 9592
        assert done[1]["result"]["pid"] != worker.pid  # CPU-bound: in a pool child
        assert done[2]["state"] == "dead" and done[2]["attempt"] == 1  # Permanent: no retry
        assert done[2]["errors"][-1]["message"] == "there is nobody to greet"


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("acme_jobs.kinds", "package.module:attribute"),
        ("acme_jobs.missing:app", "cannot import acme_jobs.missing"),
        ("acme_jobs.kinds:Greet", "not a conveyor.App"),
    ],
)
def test_a_bad_app_reference_stops_the_worker_and_the_api_with_a_clear_message(db_url, ref, says):
    for command in ("worker", "api"):
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.cli", command, "--app", ref],
            env={**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": _pythonpath()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (command, proc.stderr)
        said = " ".join(proc.stderr.replace("│", " ").split())  # unwrap rich's box
        assert says in said, (command, proc.stderr)
