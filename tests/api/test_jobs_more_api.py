"""Batch, listing with keyset pagination, events, retry and kinds, over a real database."""

from __future__ import annotations

from jobs.model import JobState
from jobs.transitions import Failure


async def test_batch_returns_ids_in_input_order_and_reports_duplicates(api, store):
    first = await api.post("/v1/jobs", json={"kind": "demo.noop", "idempotency_key": "dup"})
    body = {
        "jobs": [{"kind": "demo.sleep", "payload": {"seconds": i}} for i in range(3)]
        + [{"kind": "demo.noop", "idempotency_key": "dup"}]
    }
    r = await api.post("/v1/jobs/batch", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["duplicates"] == [False, False, False, True]
    assert out["ids"][3] == first.json()["id"]
    for i, job_id in enumerate(out["ids"][:3]):
        job = await store.get(job_id)
        assert job.payload == {"seconds": float(i)} and job.owner == "key:alice"


async def test_an_invalid_job_in_a_batch_names_its_index_and_enqueues_nothing(api, store):
    body = {"jobs": [{"kind": "demo.noop"}, {"kind": "demo.sleep", "payload": {"seconds": -5}}]}
    r = await api.post("/v1/jobs/batch", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("jobs[1]:")
    assert await store.pool.fetchval("SELECT count(*) FROM job") == 0
    too_many = await api.post("/v1/jobs/batch", json={"jobs": [{"kind": "demo.noop"}] * 10_001})
    assert too_many.status_code == 422


async def test_listing_pages_newest_first_and_filters(api):
    ids = (
        await api.post("/v1/jobs/batch", json={"jobs": [{"kind": "demo.noop"} for _ in range(7)]})
    ).json()["ids"]
    await api.post("/v1/jobs", who="bob", json={"kind": "demo.noop"})
    seen, cursor = [], None
    while True:
        path = "/v1/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(path)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)  # alice's only, newest first, no repeats
    assert len((await api.get("/v1/jobs?limit=100", who="root")).json()["jobs"]) == 8
    await api.post(f"/v1/jobs/{ids[0]}/cancel")
    cancelled = (await api.get("/v1/jobs?state=cancelled")).json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    both = (await api.get("/v1/jobs?state=cancelled&state=queued&limit=100")).json()["jobs"]
    assert len(both) == 7
    assert (await api.get("/v1/jobs?state=paused")).status_code == 422
    assert (await api.get("/v1/jobs?limit=0")).status_code == 422
    assert (await api.get("/v1/jobs?cursor=abc")).status_code == 422


async def test_events_and_retry_of_a_dead_job(api, store):
    job_id = (await api.post("/v1/jobs", json={"kind": "demo.fail", "max_attempts": 1})).json()[
        "id"
    ]
    [claimed] = await store.claim(["default"], 1, "w", 30)
    from jobs.transitions import Failure

    await store.complete(claimed, Failure("RuntimeError", "boom"))
    events = (await api.get(f"/v1/jobs/{job_id}/events")).json()
    assert [e["type"] for e in events] == ["dead"]
    assert (await api.get(f"/v1/jobs/{job_id}/events", who="bob")).status_code == 404
    r = await api.post(f"/v1/jobs/{job_id}/retry")
    assert r.status_code == 200 and r.json() == {"id": job_id, "state": "queued"}
    again = await api.post(f"/v1/jobs/{job_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"
    assert (await store.get(job_id)).state is JobState.QUEUED
    events = (await api.get(f"/v1/jobs/{job_id}/events")).json()
    assert events[-1]["type"] == "retried" and events[-1]["data"]["by"] == "key:alice"


async def test_kinds_come_with_their_payload_schema(api):
    kinds = {k["kind"]: k["payload_schema"] for k in (await api.get("/v1/kinds")).json()}
    assert "demo.sleep" in kinds
    assert kinds["demo.sleep"]["properties"]["seconds"]["type"] == "number"


async def test_queue_figures_are_scoped_to_the_caller(api, store):
    await api.post("/v1/jobs/batch", json={"jobs": [{"kind": "demo.noop"}] * 3})
    await api.post("/v1/jobs", json={"kind": "demo.noop", "queue": "prices"})
    await api.post("/v1/jobs", who="bob", json={"kind": "demo.noop"})
    [claimed] = await store.claim(["prices"], 1, "w", 30)
    from jobs.transitions import Success

    await store.complete(claimed, Success())
    mine = {q["queue"]: q for q in (await api.get("/v1/queues")).json()}
    assert mine["default"]["queued"] == 3 and mine["default"]["oldest_queued_age_s"] >= 0
    assert mine["prices"]["succeeded_last_minute"] == 1 and mine["prices"]["queued"] == 0
    everyone = {q["queue"]: q for q in (await api.get("/v1/queues", who="root")).json()}
    assert everyone["default"]["queued"] == 4


async def test_workers_list_live_workers_with_their_running_jobs_to_admins_only(api, store):
    await store.register_worker("host:1:abc", "host", 1, ["default"], 4)
    await api.post("/v1/jobs", json={"kind": "demo.noop"})
    await store.claim(["default"], 1, "host:1:abc", 30)
    refused = await api.get("/v1/workers")  # hosts and pids are the deployment's
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    [w] = (await api.get("/v1/workers", who="root")).json()
    assert (w["id"], w["queues"], w["concurrency"], w["running"]) == (
        "host:1:abc",
        ["default"],
        4,
        1,
    )


async def _dead(api, store, kind="demo.fail", who="alice"):
    body = {"kind": kind, "max_attempts": 1, "queue": "failing"}
    job_id = (await api.post("/v1/jobs", who=who, json=body)).json()["id"]
    [claimed] = await store.claim(["failing"], 1, "w", 30)
    assert claimed.id == job_id
    await store.complete(claimed, Failure("RuntimeError", "boom"))
    return job_id


async def test_bulk_retry_is_for_admins_and_replays_what_matches(api, store):
    a = await _dead(api, store)
    b = await _dead(api, store, who="bob")
    c = await _dead(api, store, kind="demo.noop")
    forbidden = await api.post("/v1/jobs/retry", json={})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    r = await api.post("/v1/jobs/retry", who="root", json={"filter": {"kind": "demo.fail"}})
    assert r.json() == {"retried": 2, "ids": sorted([a, b])}
    assert (await store.get(c)).state is JobState.DEAD
    bad = await api.post("/v1/jobs/retry", who="root", json={"filter": {"states": ["running"]}})
    assert bad.status_code == 422


async def test_active_shows_live_jobs_and_recent_finishes(api, store):
    live = (await api.post("/v1/jobs", json={"kind": "demo.noop"})).json()["id"]
    dead = await _dead(api, store)
    await api.post("/v1/jobs", who="bob", json={"kind": "demo.noop"})
    await store.pool.execute(
        "UPDATE job SET finished_at = now() - interval '1 hour' WHERE id = $1", dead
    )
    recent = await _dead(api, store)
    ids = [j["id"] for j in (await api.get("/v1/jobs/active")).json()]
    assert ids == [recent, live]  # newest first; the hour-old death and bob's job left out
    assert (await api.get("/v1/jobs/active?recent_s=-1")).status_code == 422
