"""The routes behind the dashboard's jobs browser: filters by state (scheduled and retrying
among them), owner and search; capped counts per state; bulk cancel, retry and delete over
a selection, with delete for admins only and recorded in the audit log."""

from __future__ import annotations

from jobs.model import JobState, NewJob
from jobs.transitions import Failure


async def _dead(store, owner: str) -> int:
    enq = await store.enqueue(NewJob(kind="demo.fail", owner=owner, max_attempts=1, queue="dl"))
    [job] = await store.claim(["dl"], 1, "w", 30)
    assert await store.complete(job, Failure("RuntimeError", "boom"))
    return enq.id


async def test_filters_by_browse_state_owner_and_search(api, store):
    later = await api.post("/v1/jobs", json={"kind": "demo.noop", "delay_s": 3600})
    now = await api.post(
        "/v1/jobs", json={"kind": "demo.sleep", "payload": {"seconds": 7}, "idempotency_key": "k-1"}
    )
    theirs = await api.post("/v1/jobs", who="bob", json={"kind": "demo.noop"})
    later_id, now_id, bob_id = later.json()["id"], now.json()["id"], theirs.json()["id"]

    def ids(r):
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    assert ids(await api.get("/v1/jobs?state=scheduled")) == [later_id]
    assert ids(await api.get("/v1/jobs?state=queued")) == [now_id, later_id]
    assert ids(await api.get("/v1/jobs?q=k-1")) == [now_id]
    assert ids(await api.get(f"/v1/jobs?q=%23{now_id}")) == [now_id]
    assert ids(await api.get('/v1/jobs?q="seconds": 7')) == [now_id]
    assert ids(await api.get(f"/v1/jobs?q={bob_id}")) == []  # bob's: not alice's to find
    assert ids(await api.get("/v1/jobs?owner=key:bob", who="root")) == [bob_id]
    refused = await api.get("/v1/jobs?owner=key:bob")
    assert refused.status_code == 403
    assert "only admins" in refused.json()["error"]["message"]
    assert ids(await api.get("/v1/jobs?owner=key:alice")) == [now_id, later_id]
    [brief] = (await api.get("/v1/jobs?q=k-1&brief=true")).json()["jobs"]
    assert (brief["id"], brief["payload"], brief["result"]) == (now_id, None, None)
    bad = await api.get("/v1/jobs?state=sleeping")
    assert bad.status_code == 422 and "state" in bad.json()["error"]["message"]


async def test_counts_cover_every_state_for_the_callers_jobs(api, store):
    await _dead(store, "key:alice")
    await _dead(store, "key:bob")
    await api.post("/v1/jobs", json={"kind": "demo.noop", "delay_s": 3600})
    r = await api.get("/v1/jobs/counts")
    assert r.status_code == 200, r.text
    counts = {c["state"]: (c["count"], c["more"]) for c in r.json()["counts"]}
    assert list(counts) == [
        "waiting",
        "queued",
        "scheduled",
        "retrying",
        "running",
        "succeeded",
        "cancelled",
        "dead",
    ]
    assert counts["dead"] == (1, False)  # hers only
    assert counts["queued"] == counts["scheduled"] == (1, False)
    everyone = {
        c["state"]: c["count"] for c in (await api.get("/v1/jobs/counts", "root")).json()["counts"]
    }
    assert everyone["dead"] == 2
    kinds = await api.get("/v1/jobs/counts?kind=demo.noop", "root")
    assert {c["state"]: c["count"] for c in kinds.json()["counts"]}["dead"] == 0


async def test_bulk_retry_and_cancel_act_on_the_callers_jobs_and_say_why_not(api, store):
    mine = [await _dead(store, "key:alice") for _ in range(3)]
    bobs = await _dead(store, "key:bob")
    queued = (await api.post("/v1/jobs", json={"kind": "demo.noop", "delay_s": 3600})).json()["id"]
    r = await api.post("/v1/jobs/bulk", json={"action": "retry", "ids": [*mine, bobs, queued]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] == mine
    skipped = {s["id"]: s for s in out["skipped"]}
    assert skipped[bobs] == {"id": bobs, "state": None, "reason": "no such job"}
    assert skipped[queued]["state"] == "queued"
    assert "dead or cancelled" in skipped[queued]["reason"]
    assert (await store.get(bobs)).state is JobState.DEAD
    for job_id in mine:
        assert (await store.get(job_id)).state is JobState.QUEUED

    r = await api.post("/v1/jobs/bulk", json={"action": "cancel", "ids": [*mine, queued, bobs]})
    assert r.status_code == 200, r.text
    assert r.json()["done"] == sorted([*mine, queued])
    assert [s["id"] for s in r.json()["skipped"]] == [bobs]
    events = await store.events(queued)
    assert [(e.type, e.data) for e in events] == [("cancelled", {"by": "key:alice"})]


async def test_bulk_delete_is_for_admins_and_is_audited(api, store):
    dead = [await _dead(store, "key:alice") for _ in range(2)]
    live = (await api.post("/v1/jobs", json={"kind": "demo.noop", "delay_s": 3600})).json()["id"]
    refused = await api.post("/v1/jobs/bulk", json={"action": "delete", "ids": dead})
    assert refused.status_code == 403
    assert (await store.get(dead[0])).state is JobState.DEAD

    r = await api.post("/v1/jobs/bulk", "root", json={"action": "delete", "ids": [*dead, live]})
    assert r.status_code == 200, r.text
    assert r.json()["done"] == dead
    [kept] = r.json()["skipped"]
    assert (kept["id"], kept["state"]) == (live, "queued")
    assert "cancel it first" in kept["reason"]
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE id = ANY($1)", dead) == 0

    audit = await api.get("/v1/audit", "root")
    assert audit.status_code == 200, audit.text
    [event] = audit.json()["events"]
    assert (event["actor"], event["action"]) == ("key:root", "jobs.deleted")
    assert event["data"] == {"ids": dead, "count": 2}
    assert (await api.get("/v1/audit")).status_code == 403


async def test_a_bulk_body_out_of_bounds_answers_422(api):
    for body, words in (
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "cancel", "ids": []}, "ids"),
        ({"action": "cancel", "ids": list(range(1, 1002))}, "ids"),
        ({"action": "cancel", "ids": [0]}, "ids"),
        ({"action": "cancel", "ids": [1], "extra": True}, "extra"),
    ):
        r = await api.post("/v1/jobs/bulk", json=body)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["error"]["message"], r.text
