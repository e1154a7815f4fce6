"""The routes an operator's screen needs: /v1/me, /v1/throughput, /v1/jobs/retry/count, the
finished_* filters of /v1/jobs, and the active-jobs stream (against real processes)."""

from __future__ import annotations

import json

import pytest

from jobs.transitions import Success
from tests.api.test_jobs_more_api import _dead


async def test_me_names_the_caller_and_its_role(api):
    assert (await api.get("/v1/me")).json() == {
        "owner": "key:alice",
        "source": "key",
        "name": "alice",
        "issuer": None,
        "role": "user",
        "is_admin": False,
    }
    assert (await api.get("/v1/me", who="root")).json()["is_admin"] is True
    anonymous = await api.client.get("/v1/me")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"


async def test_throughput_counts_finished_jobs_per_minute_by_outcome(api, store):
    await _dead(api, store)
    await _dead(api, store, who="bob")
    await api.post("/v1/jobs", json={"kind": "demo.noop", "queue": "quick"})
    [claimed] = await store.claim(["quick"], 1, "w", 30)
    await store.complete(claimed, Success())

    mine = (await api.get("/v1/throughput?minutes=5")).json()
    assert mine["minutes"] == 5 and len(mine["points"]) == 5  # empty minutes as zeros
    minutes = [p["minute"] for p in mine["points"]]
    assert minutes == sorted(minutes)
    now = mine["points"][-1]
    assert (now["succeeded"], now["dead"], now["cancelled"]) == (1, 1, 0)
    assert all(p["succeeded"] + p["dead"] == 0 for p in mine["points"][:-1])
    everyone = (await api.get("/v1/throughput?minutes=1", who="root")).json()
    assert everyone["points"][-1]["dead"] == 2
    assert (await api.get("/v1/throughput?minutes=61")).status_code == 422


async def test_retry_count_matches_what_a_bulk_retry_then_replays(api, store):
    await _dead(api, store)
    await _dead(api, store, who="bob")
    await _dead(api, store, kind="demo.noop")
    body = {"filter": {"kind": "demo.fail"}}
    forbidden = await api.post("/v1/jobs/retry/count", json=body)
    assert forbidden.status_code == 403
    counted = await api.post("/v1/jobs/retry/count", who="root", json=body)
    assert counted.json() == {"matching": 2}
    assert (await api.post("/v1/jobs/retry", who="root", json=body)).json()["retried"] == 2
    after = await api.post("/v1/jobs/retry/count", who="root", json=body)
    assert after.json() == {"matching": 0}
    bad = await api.post("/v1/jobs/retry/count", who="root", json={"filter": {"states": []}})
    assert bad.status_code == 422


async def test_jobs_filter_on_when_they_finished(api, store):
    old = await _dead(api, store)
    await store.pool.execute(
        "UPDATE job SET finished_at = now() - interval '2 hours' WHERE id = $1", old
    )
    new = await _dead(api, store)
    r = await api.client.get(
        "/v1/jobs",
        params={"state": "dead", "finished_after": "2000-01-01T00:00:00Z"},
        headers=api.auth("alice"),
    )
    assert [j["id"] for j in r.json()["jobs"]] == [new, old]
    cut = (await store.get(new)).finished_at.isoformat()
    before = await api.client.get(
        "/v1/jobs", params={"finished_before": cut}, headers=api.auth("alice")
    )
    assert [j["id"] for j in before.json()["jobs"]] == [old]
    after = await api.client.get(
        "/v1/jobs", params={"finished_after": cut}, headers=api.auth("alice")
    )
    assert [j["id"] for j in after.json()["jobs"]] == [new]


async def _events(response):
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@pytest.mark.slow
async def test_the_active_stream_follows_every_job_of_the_caller(live):
    client, auth = live
    await client.post("/v1/jobs", json={"kind": "demo.noop"}, headers=auth["bob"])
    async with client.stream("GET", "/v1/jobs/active/stream", headers=auth["alice"]) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _events(r)
        kind, first = await anext(events)
        assert kind == "jobs" and first["jobs"] == []  # bob's job is not alice's to see
        body = {"kind": "demo.progress", "payload": {"steps": 4, "interval_s": 0.3}}
        job_id = (await client.post("/v1/jobs", json=body, headers=auth["alice"])).json()["id"]
        seen = []
        async for kind, data in events:
            assert kind == "job" and data["job_id"] == job_id and data["kind"] == "demo.progress"
            seen.append((data["state"], data["progress"]))
            if data["state"] == "succeeded":
                break
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert len({p for s, p in seen if s == "running"}) >= 2  # moved while it ran, live
