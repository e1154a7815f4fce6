"""Quotas for non-admins: the priority range, the queues, the queued-jobs cap and the demo
kinds, each refusal a 403 or 422 that says what is allowed; admins set them per owner or for
every user (`*`), and are never limited themselves."""

from __future__ import annotations

from tests.support import eventually

MIGRATION_DEFAULT = {  # what migration 0011 writes for `*` (test_schema checks it)
    "priority_min": -10,
    "priority_max": 10,
    "queues": None,
    "max_queued": 10000,
    "demo_kinds": False,
}


async def put(api, owner: str, body: dict, who: str = "root"):
    return await api.client.put(f"/v1/quotas/{owner}", json=body, headers=api.auth(who))


async def quota_applied(api, check) -> None:
    """An edit holds within a second on every API process (each caches a quota 1 s)."""
    await eventually(check, timeout=3)


async def test_the_default_keeps_users_to_their_range_and_off_the_demo_kinds(api):
    assert (await put(api, "*", MIGRATION_DEFAULT)).status_code == 200
    job = {"kind": "demo.noop"}
    r = await api.post("/v1/jobs", json=job)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only_kind"
    assert "conveyor quotas set '*' --demo" in r.json()["error"]["message"]
    assert (await api.post("/v1/jobs", json=job, who="root")).status_code == 201  # admins may

    body = {"kind": "strategy.optimize", "payload": {"symbols": ["IBM"]}}
    r = await api.post("/v1/jobs", json={**body, "priority": 11})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "priority: users may submit priorities from -10 to 10, not 11"
    )
    assert (await api.post("/v1/jobs", json={**body, "priority": 10})).status_code == 201
    assert (await api.post("/v1/jobs", json={**body, "priority": -10})).status_code == 201
    r = await api.post("/v1/jobs", json={**body, "priority": 30000}, who="root")
    assert r.status_code == 201


async def test_an_owners_own_quota_wins_and_caps_its_queued_jobs(api):
    job = {"kind": "strategy.optimize", "payload": {"symbols": ["IBM"]}}
    mine = {**MIGRATION_DEFAULT, "max_queued": 3, "queues": ["default", "research"]}
    r = await put(api, "key:alice", mine)
    assert r.status_code == 200 and r.json()["updated_by"] == "key:root"
    for _ in range(3):
        assert (await api.post("/v1/jobs", json=job)).status_code == 201
    r = await api.post("/v1/jobs", json=job)
    assert r.status_code == 403 and r.json()["error"]["code"] == "queued_cap"
    assert "3 queued jobs at most, and 3 are queued" in r.json()["error"]["message"]
    r = await api.post("/v1/jobs/batch", json={"jobs": [job, job]}, who="bob")
    assert r.status_code == 201  # bob has the default's cap

    r = await api.post("/v1/jobs", json={**job, "queue": "scheduler"}, who="alice")
    assert r.status_code == 403 and r.json()["error"]["code"] == "queue_not_allowed"
    assert "submit to one of default, research" in r.json()["error"]["message"]
    assert (
        await api.post("/v1/jobs", json={**job, "queue": "scheduler"}, who="bob")
    ).status_code == 201

    # a batch counts what it adds, and names the job a rule refuses
    await put(api, "key:alice", {**mine, "max_queued": 4})

    async def batch_of_two_over() -> bool:
        r = await api.post("/v1/jobs/batch", json={"jobs": [job, job]})
        return r.status_code == 403 and "(this adds 2)" in r.json()["error"]["message"]

    await quota_applied(api, batch_of_two_over)
    r = await api.post("/v1/jobs/batch", json={"jobs": [job, {**job, "priority": 50}]})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("jobs[1]: priority")

    assert (
        await api.client.delete("/v1/quotas/key:alice", headers=api.auth("root"))
    ).status_code == 204

    async def back_to_the_default() -> bool:
        return (await api.post("/v1/jobs", json=job)).status_code == 201

    await quota_applied(api, back_to_the_default)


async def test_quotas_are_an_admins_to_read_and_change_and_are_checked(api):
    assert (await api.get("/v1/quotas", who="alice")).status_code == 403
    assert (await put(api, "key:alice", MIGRATION_DEFAULT, who="alice")).status_code == 403
    listed = (await api.get("/v1/quotas", who="root")).json()
    assert listed[0]["owner"] == "*"
    r = await put(api, "*", {**MIGRATION_DEFAULT, "priority_min": 5, "priority_max": 1})
    assert r.status_code == 422 and "priority_min: 5 is above priority_max 1" in r.text
    r = await put(api, "*", {**MIGRATION_DEFAULT, "queues": ["bad queue!"]})
    assert r.status_code == 422
    r = await put(api, "*", {k: v for k, v in MIGRATION_DEFAULT.items() if k != "demo_kinds"})
    assert r.status_code == 422 and "demo_kinds" in r.text
    r = await api.client.delete("/v1/quotas/*", headers=api.auth("root"))
    assert r.status_code == 409 and "PUT it to change it" in r.text
    r = await api.client.delete("/v1/quotas/key:nobody", headers=api.auth("root"))
    assert r.status_code == 404
