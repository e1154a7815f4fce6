"""The probe's checks that need a real `conveyor api` process: connections that never finish
their headers, a body that stops arriving, streams whose credential lapses, the database
going away, and the isolation matrix over every operation of the OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from conveyor.embedded import EmbeddedPostgres
from jobs.migrate import upgrade
from jobs.model import NewJob
from jobs.transitions import Failure
from stores.keys import create_key, revoke_key
from tests.processes import Processes
from tests.support import eventually

pytestmark = pytest.mark.slow


async def _half_open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: conveyor\r\nX-Slow: ")  # never finished
    await writer.drain()
    return reader, writer


async def test_connections_that_never_finish_their_headers_cannot_lock_out_a_probe(procs):
    base = procs.start_api(open_files=1024, CONVEYOR_API_HEADER_TIMEOUT_S="4")
    host, port = base.removeprefix("http://").split(":")
    held = []
    for _ in range(11):  # 1,100 in batches, more than the server's 1,024 descriptors
        held += await asyncio.gather(*(_half_open(host, int(port)) for _ in range(100)))
    async with httpx.AsyncClient(base_url=base, timeout=3) as client:
        for _ in range(5):  # at the cap, each new connection closes the longest-waiting one
            r = await client.get("/health", headers={"Connection": "close"})
            assert r.status_code == 200
    started = time.monotonic()

    async def closed(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), 15) == b""
        except (ConnectionError, TimeoutError):
            return True  # reset by the server, or nothing: counted below as not closed

    ends = await asyncio.gather(*(closed(r) for r, _ in held))
    assert all(ends)  # every one closed by the server: evicted, or timed out at 4 s
    assert time.monotonic() - started < 15
    for _, writer in held:
        writer.close()
    async with httpx.AsyncClient(base_url=base, timeout=3) as client:
        assert (await client.get("/health")).status_code == 200


async def test_a_body_that_stops_arriving_answers_408(procs, conn):
    base = procs.start_api(CONVEYOR_API_BODY_TIMEOUT_S="1")
    key = await create_key(conn, "alice", "user")
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/jobs HTTP/1.1\r\nHost: conveyor\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + key.encode() + b'\r\nContent-Length: 100\r\n\r\n{"kind"'
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(-1), 10)  # to the close: headers and body
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in answer


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event, data = "message", None
    async for line in response.aiter_lines():
        if line == "":
            if data is not None:
                yield event, json.loads(data)
            event, data = "message", None
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data = line.removeprefix("data:").strip()


async def _until_end(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple:
    """Open a stream; returns (seconds from its first event to its `end`, the end's data)."""
    async with client.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200
        first = None
        async for event, data in _events(r):
            if first is None:
                first = time.monotonic()
            if event == "end":
                return time.monotonic() - first, data
    raise AssertionError("the stream ended without an `end` event")


async def test_an_open_stream_ends_soon_after_its_key_is_revoked(procs, conn, store):
    base = procs.start_api(CONVEYOR_API_KEY_CACHE_S="1", CONVEYOR_API_STREAM_RECHECK_S="1")
    key = await create_key(conn, "alice", "user")
    job = await store.enqueue(NewJob(kind="demo.noop", owner="key:alice"))  # no worker: stays
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        token = (await client.post(f"/v1/jobs/{job.id}/stream-token", headers=auth)).json()
        streams = [
            asyncio.create_task(_until_end(client, path, headers))
            for path, headers in (
                ("/v1/jobs/active/stream", auth),
                (f"/v1/jobs/{job.id}/stream", auth),
                (token["url"], {}),  # as a browser's EventSource opens it
            )
        ]
        await asyncio.sleep(1.5)
        revoked_at = time.monotonic()
        await revoke_key(conn, "alice")
        for _, data in await asyncio.gather(*streams):
            assert data["code"] == "credential_lapsed"
            assert "revoked" in data["message"]
        assert time.monotonic() - revoked_at < 5  # a cache interval and a recheck, not more
        again = await client.get(f"/v1/jobs/{job.id}/stream", headers=auth)
        assert again.status_code == 401


async def test_an_open_stream_ends_when_its_token_expires(procs, store):
    secret, issuer = "s" * 40, "https://login.example.test"
    base = procs.start_api(
        JWT_SECRET=secret, JWT_ISSUER=issuer, JWT_AUDIENCE="conveyor", JWT_LEEWAY_S="1"
    )
    job = await store.enqueue(NewJob(kind="demo.noop", owner=f"jwt:{issuer}:carol"))
    exp = time.time() + 3
    token = jwt.encode(
        {"sub": "carol", "iss": issuer, "aud": "conveyor", "exp": int(exp)}, secret, "HS256"
    )
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        _, data = await _until_end(client, f"/v1/jobs/{job.id}/stream", auth)
        ended = time.time()
        assert data["code"] == "credential_lapsed" and "expired" in data["message"]
        assert int(exp) + 1 <= ended < int(exp) + 1 + 2  # at exp + leeway, not a poll later


async def test_with_the_database_down_routes_answer_503_in_the_error_shape(tmp_path):
    pg = EmbeddedPostgres(durable=False)
    url = pg.start()
    try:
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(url)
        key = await create_key(conn, "alice", "user")
        await conn.close()
        procs = Processes(url, tmp_path)
        try:
            base = procs.start_api()
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                assert (await client.get("/v1/jobs", headers=auth)).status_code == 200
                await asyncio.to_thread(pg.stop)
                for path, headers in (
                    ("/v1/jobs", auth),  # the key is cached; the listing needs the database
                    ("/v1/jobs", {"Authorization": "Bearer cvk_unknown"}),  # the lookup does
                ):
                    r = await client.get(path, headers=headers)
                    assert r.status_code == 503, r.text
                    error = r.json()["error"]
                    assert error["code"] == "database_unavailable"
                    assert "try again" in error["message"] and r.headers["retry-after"]
                ready = await client.get("/ready")
                assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
                await asyncio.to_thread(pg.start)

                async def back() -> bool:
                    return (await client.get("/v1/jobs", headers=auth)).status_code == 200

                await eventually(back, 30)
        finally:
            procs.stop_all()
    finally:
        pg.destroy()


# The isolation matrix: every operation of the OpenAPI schema, as nobody, a bad key, another
# user, the owner and an admin. An operation added later is in it without being listed;
# only the exceptions are: the public ones and the admin-only ones.
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
ADMIN_ONLY = {
    ("GET", "/v1/schedules"),
    ("POST", "/v1/schedules"),
    ("GET", "/v1/schedules/{name}"),
    ("PATCH", "/v1/schedules/{name}"),
    ("DELETE", "/v1/schedules/{name}"),
    ("POST", "/v1/schedules/{name}/trigger"),
    ("POST", "/v1/jobs/retry"),
    ("POST", "/v1/jobs/retry/count"),
    ("GET", "/v1/workers"),
    ("GET", "/v1/workers/{worker_id}"),
    ("PATCH", "/v1/queues/{name}"),
    ("GET", "/v1/quotas"),
    ("PUT", "/v1/quotas/{owner}"),
    ("DELETE", "/v1/quotas/{owner}"),
    ("GET", "/v1/shares"),
    ("PUT", "/v1/shares/{owner}"),
    ("DELETE", "/v1/shares/{owner}"),
    ("PATCH", "/v1/kinds/{kind}"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/{name}"),
    ("GET", "/v1/stats/kinds"),
    ("GET", "/v1/stats/depth"),
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/jobs"): {"kind": "demo.noop"},
    ("POST", "/v1/jobs/batch"): {"jobs": [{"kind": "demo.noop"}]},
    ("POST", "/v1/schedules"): {"name": "probe", "cron": "0 * * * *", "kind": "demo.noop"},
    ("PATCH", "/v1/schedules/{name}"): {"enabled": False},
    ("PATCH", "/v1/queues/{name}"): {"paused": False},
    ("PUT", "/v1/quotas/{owner}"): {
        "priority_min": -10,
        "priority_max": 10,
        "queues": None,
        "max_queued": None,
        "demo_kinds": True,
    },
    ("PUT", "/v1/shares/{owner}"): {"weight": 2},
    ("PATCH", "/v1/kinds/{kind}"): {"owner_concurrency": 2},
    ("POST", "/v1/jobs/bulk"): {"action": "cancel", "ids": [1]},
    ("POST", "/v1/keys"): {"name": "probe", "role": "user"},
}
ALICE = "key:alice"


async def _call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, str]:
    """Status and body text; a stream's first event only."""
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with client.stream(method, path, **kwargs) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            text = ""
            async for line in r.aiter_lines():
                text += line + "\n"
                if line.startswith("data:"):
                    break
            return r.status_code, text
        return r.status_code, (await r.aread()).decode()


async def test_every_operation_keeps_each_principal_to_its_own(procs, conn, store):
    base = procs.start_api()
    keys = {
        who: await create_key(conn, who, role)
        for who, role in (("alice", "user"), ("bob", "user"), ("root", "admin"))
    }
    auth = {who: {"Authorization": f"Bearer {k}"} for who, k in keys.items()}
    dead = await store.enqueue(NewJob(kind="demo.fail", owner=ALICE, max_attempts=1, queue="q"))
    [claimed] = await store.claim(["q"], 1, "w", 30)
    await store.complete(claimed, Failure("RuntimeError", "boom"))
    run_id = await conn.fetchval(
        "INSERT INTO strategy_run (job_id, owner, kind, symbol, interval, family, cost,"
        " risk_free, conventions, published, params, sample, selected, start_ts, end_ts, bars)"
        " VALUES ($1, $2, 'strategy.optimize', 'IBM', '1d', 'sma_cross', 0, 0, '{}', false,"
        " '{}', 'in', true, now(), now(), 10) RETURNING id",
        dead.id,
        ALICE,
    )
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        schema = (await client.get("/openapi.json")).json()
        operations = [
            (method.upper(), path) for path, ops in schema["paths"].items() for method in ops
        ]
        assert len(operations) >= 32
        assert set(operations) >= PUBLIC | ADMIN_ONLY  # the lists name real operations
        made = await client.post(
            "/v1/schedules",
            json={"name": "target", "cron": "0 * * * *", "kind": "demo.noop"},
            headers=auth["root"],
        )
        assert made.status_code == 201, made.text
        schedule = made.json()["name"]
        values = {
            "job_id": dead.id,
            "strategy_id": run_id,
            "snapshot_id": 1,
            "symbol": "IBM",
            "name": schedule,
            "owner": "key:alice",
            "kind": "demo.sleep",
            "worker_id": "host:1:abc",
        }
        wrong: list[str] = []

        def expect(ok: bool, who: str, op: tuple[str, str], status: int, why: str) -> None:
            if not ok:
                wrong.append(f"{op[0]} {op[1]} as {who}: {status} ({why})")

        # the admin last: its calls change things (DELETE a schedule, bulk retry)
        for who in ("nobody", "bad key", "bob", "alice", "root"):
            headers = {
                "nobody": {},
                "bad key": {"Authorization": "Bearer cvk_nope"},
                **auth,
            }[who]
            for method, template in operations:
                path = template.format(**values)
                body = BODIES.get((method, template))
                status, text = await _call(client, method, path, body, headers)
                op = (method, template)
                expect(status < 500, who, op, status, "a server error")
                if op in PUBLIC:
                    continue
                owned = "{job_id}" in template or "{strategy_id}" in template
                if who in ("nobody", "bad key"):
                    expect(status == 401, who, op, status, "must authenticate")
                elif who == "bob":
                    if op in ADMIN_ONLY:
                        expect(status == 403, who, op, status, "admin only")
                    elif owned:
                        expect(status == 404, who, op, status, "alice's, as if absent")
                        expect("grid_not_found" not in text, who, op, status, "tells it exists")
                    expect(ALICE not in text, who, op, status, "shows alice's data")
                elif who == "alice":
                    if op in ADMIN_ONLY:
                        expect(status == 403, who, op, status, "admin only")
                    elif owned:  # found: a 404 may only say what the resource lacks
                        lacks = status == 404 and '"code":"grid_not_found"' in text
                        expect(status != 404 or lacks, who, op, status, "her own")
                else:
                    expect(status not in (401, 403), who, op, status, "an admin may")
        assert wrong == [], "\n".join(wrong)
        job = await store.get(dead.id)
        assert job.owner == ALICE
