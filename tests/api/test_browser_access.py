"""What a browser frontend on another origin needs: CORS for the listed origins only, and
stream tokens so `EventSource` (which cannot send headers) can follow a job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.settings import ApiSettings
from api.stream_tokens import issue
from jobs.transitions import Success
from stores.keys import create_key

FRONTEND = "https://app.example.test"


@pytest.fixture
async def cors(db_url: str, conn, monkeypatch) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    monkeypatch.setenv("CONVEYOR_CORS_ORIGINS", f"{FRONTEND},http://localhost:5173")
    key = await create_key(conn, "web", "user")
    app = create_app(db_url, ApiSettings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor") as c:
            yield c, key


async def test_a_listed_origin_may_call_the_api_and_read_the_headers_it_needs(cors):
    client, key = cors
    preflight = await client.options(
        "/v1/jobs",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRONTEND
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert preflight.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in preflight.headers
    r = await client.post(
        "/v1/jobs",
        json={"kind": "demo.noop"},
        headers={"Origin": FRONTEND, "Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == FRONTEND
    exposed = r.headers["access-control-expose-headers"].lower()
    assert "idempotent-replayed" in exposed and "location" in exposed
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"


async def test_an_origin_not_listed_gets_no_cors_grant(cors):
    client, key = cors
    preflight = await client.options(
        "/v1/jobs",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    r = await client.get(
        "/v1/jobs", headers={"Origin": "https://evil.test", "Authorization": f"Bearer {key}"}
    )
    assert "access-control-allow-origin" not in r.headers  # the browser withholds the answer


async def test_without_configured_origins_no_cors_headers_are_sent(api):
    r = await api.client.options(
        "/v1/jobs", headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in r.headers


async def _finished_job(api, store, who: str = "alice") -> int:
    job_id = (await api.post("/v1/jobs", json={"kind": "demo.noop"}, who=who)).json()["id"]
    [claimed] = await store.claim(["default"], 1, "w", 30)
    await store.complete(claimed, Success({"ok": True}))
    return job_id


async def test_a_stream_token_opens_its_jobs_stream_and_nothing_else(api, store):
    job_id = await _finished_job(api, store)
    r = await api.post(f"/v1/jobs/{job_id}/stream-token")
    assert r.status_code == 200, r.text
    issued = r.json()
    assert issued["url"] == f"/v1/jobs/{job_id}/stream?token={issued['token']}"
    stream = await api.client.get(issued["url"])  # no Authorization header
    assert stream.status_code == 200
    assert '"state":"succeeded"' in stream.text
    other = await _finished_job(api, store)
    for path in (
        f"/v1/jobs/{other}/stream",  # another job's stream
        "/v1/jobs/active/stream",  # another stream
        f"/v1/jobs/{job_id}",  # not a stream: tokens are for streams only
        f"/v1/jobs/{job_id}/events",
    ):
        refused = await api.client.get(f"{path}?token={issued['token']}")
        assert refused.status_code == 401, (path, refused.text)
    assert (await api.post(f"/v1/jobs/{job_id}/stream-token", who="bob")).status_code == 404


async def test_a_stream_token_resumes_with_last_event_id_in_the_query(api, store):
    job_id = await _finished_job(api, store)
    token = (await api.post(f"/v1/jobs/{job_id}/stream-token")).json()["token"]
    first = await api.client.get(f"/v1/jobs/{job_id}/stream?token={token}")
    last_id = next(x for x in first.text.splitlines() if x.startswith("id:")).split()[1]
    again = await api.client.get(f"/v1/jobs/{job_id}/stream?token={token}&last_event_id={last_id}")
    assert again.status_code == 204  # the client has the end already: EventSource stops


async def test_an_expired_forged_or_stretched_stream_token_is_refused(api, store):
    job_id = await _finished_job(api, store)
    secret = api.client._transport.app.state.stream_secret  # type: ignore[attr-defined]
    me = (await api.get("/v1/me")).json()
    from api.keys import Principal

    alice = Principal.key(me["name"], me["role"])
    old = issue(secret, alice, f"job:{job_id}", now=time.time() - 61)
    r = await api.client.get(f"/v1/jobs/{job_id}/stream?token={old.token}")
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    forged = issue(b"x" * 32, alice, f"job:{job_id}")
    r = await api.client.get(f"/v1/jobs/{job_id}/stream?token={forged.token}")
    assert r.status_code == 401 and "not one this API issued" in r.json()["error"]["message"]
    admin = issue(b"x" * 32, Principal.key("alice", "admin"), f"job:{job_id}")
    payload = admin.token.split(".")[0]
    genuine = issue(secret, alice, f"job:{job_id}").token.split(".")[1]
    r = await api.client.get(f"/v1/jobs/{job_id}/stream?token={payload}.{genuine}")
    assert r.status_code == 401  # a role written into someone else's signature


async def test_a_header_wins_over_a_token_and_a_bad_one_is_not_rescued_by_it(api, store):
    job_id = await _finished_job(api, store)
    token = (await api.post(f"/v1/jobs/{job_id}/stream-token")).json()["token"]
    r = await api.client.get(
        f"/v1/jobs/{job_id}/stream?token={token}",
        headers={"Authorization": "Bearer cvk_wrong"},
    )
    assert r.status_code == 401
