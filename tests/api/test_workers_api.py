"""Workers and the kind catalogue through the API: what a real `conveyor worker` publishes
of itself (version, kinds, jobs done), one worker's detail with the jobs it holds, and per
kind what the live workers say of it, its last 24 hours and whether the caller may submit it."""

from __future__ import annotations

import importlib.metadata

from compute.specs import SPECS
from jobs.metrics import MinuteCounts, minute_of
from tests.support import eventually


async def _workers(client, auth):
    r = await client.get("/v1/workers", headers=auth["root"])
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_real_worker_publishes_its_version_kinds_and_jobs_done(live):
    client, auth = live
    [w] = await eventually(lambda: _workers(client, auth))
    assert w["version"] == importlib.metadata.version("conveyor") != ""
    assert w["kinds"] == sorted(SPECS)
    assert w["concurrency"] == 4 and w["heartbeat_age_s"] < 10
    before = w["jobs_done"]
    for _ in range(3):
        r = await client.post("/v1/jobs", json={"kind": "demo.noop"}, headers=auth["alice"])
        assert r.status_code == 201, r.text

    async def counted():
        [now] = await _workers(client, auth)
        return now["jobs_done"] >= before + 3 and now

    now = await eventually(counted, 15)  # added by the next heartbeat (every second here)
    assert now["jobs_done"] == before + 3


async def test_a_workers_detail_shows_the_jobs_it_holds_and_its_kinds(live):
    client, auth = live
    [w] = await eventually(lambda: _workers(client, auth))
    r = await client.post(
        "/v1/jobs", json={"kind": "demo.sleep", "payload": {"seconds": 30}}, headers=auth["alice"]
    )
    job_id = r.json()["id"]

    async def holding():
        d = await client.get(f"/v1/workers/{w['id']}", headers=auth["root"])
        assert d.status_code == 200, d.text
        return any(j["id"] == job_id for j in d.json()["jobs"]) and d.json()

    detail = await eventually(holding, 15)
    [held] = [j for j in detail["jobs"] if j["id"] == job_id]
    assert (held["kind"], held["queue"], held["owner"], held["attempt"]) == (
        "demo.sleep",
        "default",
        "key:alice",
        1,
    )
    assert held["started_at"] is not None and detail["running"] >= 1
    kinds = {k["kind"]: k for k in detail["kinds"]}
    assert set(kinds) == set(SPECS)
    assert kinds["demo.cpu"]["cpu_bound"] is True and kinds["demo.sleep"]["cpu_bound"] is False
    assert kinds["demo.sleep"]["timeout_s"] is None
    for field in ("id", "host", "pid", "version", "queues", "concurrency", "started_at"):
        assert detail[field] == w[field], field
    assert 0 <= detail["heartbeat_age_s"] < 10 and detail["jobs_done"] >= w["jobs_done"]
    await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth["alice"])


async def test_a_worker_is_for_admins_and_an_unknown_one_answers_404(api, store):
    await store.register_worker("host:1:abc", "host", 1, ["default"], 4)
    refused = await api.get("/v1/workers/host:1:abc")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await api.get("/v1/workers/host:1:abc", who="root")).status_code == 200
    missing = await api.get("/v1/workers/host:2:abc", who="root")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "worker_not_found"
    assert "GET /v1/workers" in missing.json()["error"]["message"]


async def _finished(store, kind, outcome, finished):
    """As a worker's heartbeat adds its tally: this minute's row and its hour's."""
    minute = minute_of((await store.now()).timestamp())
    await store.add_minutes({(minute, "default", kind, outcome): MinuteCounts(finished)})


async def test_kinds_say_what_live_workers_run_and_their_last_24_hours(api, store):
    published = [{"kind": "demo.cpu", "timeout_s": 30.0, "cpu_bound": True}]
    await store.register_worker("host:1:abc", "host", 1, ["default"], 4, kinds=published)
    await _finished(store, "demo.cpu", "succeeded", 3)
    await _finished(store, "demo.cpu", "dead", 1)
    await _finished(store, "demo.cpu", "cancelled", 2)
    kinds = {k["kind"]: k for k in (await api.get("/v1/kinds", "root")).json()}
    cpu = kinds["demo.cpu"]
    assert (cpu["workers"], cpu["timeout_s"], cpu["cpu_bound"]) == (1, 30.0, True)
    assert (cpu["finished_24h"], cpu["succeeded_24h"], cpu["dead_24h"]) == (6, 3, 1)
    assert cpu["success_rate"] == 0.75
    sleep = kinds["demo.sleep"]  # no live worker runs it, nothing finished: no data
    assert (sleep["workers"], sleep["timeout_s"], sleep["cpu_bound"]) == (0, None, None)
    assert (sleep["finished_24h"], sleep["success_rate"]) == (0, None)
    users = {k["kind"]: k for k in (await api.get("/v1/kinds")).json()}  # every owner's
    assert (users["demo.cpu"]["finished_24h"], users["demo.cpu"]["success_rate"]) == (None, None)
    assert users["demo.cpu"]["workers"] == 1


async def test_kinds_say_whether_the_caller_may_submit_them(api):
    mine = {k["kind"]: k for k in (await api.get("/v1/kinds")).json()}
    assert mine["demo.sleep"]["may_submit"] is True  # the tests' quota opens the demo kinds
    assert mine["demo.sleep"]["submit_refusal"] is None
    assert mine["leaderboard.refresh"]["may_submit"] is False
    assert "only an admin" in mine["leaderboard.refresh"]["submit_refusal"]
    admin = (await api.get("/v1/kinds", who="root")).json()
    assert all(k["may_submit"] for k in admin)
    quota = {"priority_min": -10, "priority_max": 10, "queues": None, "max_queued": None}
    r = await api.client.put(
        "/v1/quotas/key:bob", json={**quota, "demo_kinds": False}, headers=api.auth("root")
    )
    assert r.status_code == 200, r.text
    bobs = {k["kind"]: k for k in (await api.get("/v1/kinds", who="bob")).json()}
    assert bobs["demo.sleep"]["may_submit"] is False
    assert "demo kinds are for admins" in bobs["demo.sleep"]["submit_refusal"]
    assert bobs["strategy.optimize"]["may_submit"] is True
    refused = await api.post("/v1/jobs", who="bob", json={"kind": "demo.sleep"})
    assert refused.status_code == 403  # what the catalogue said


async def test_a_worker_whose_row_was_removed_registers_again_with_all_it_says(live, store):
    client, auth = live
    [w] = await eventually(lambda: _workers(client, auth))
    await store.pool.execute("DELETE FROM worker")  # as another worker prunes a silent one
    assert await _workers(client, auth) == []
    [again] = await eventually(lambda: _workers(client, auth), 15)  # at its next heartbeat
    assert (again["id"], again["version"], again["kinds"]) == (w["id"], w["version"], w["kinds"])
    kinds = await client.get(f"/v1/workers/{w['id']}", headers=auth["root"])
    assert {k["kind"] for k in kinds.json()["kinds"]} == set(SPECS)
