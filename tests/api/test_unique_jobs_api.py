"""POST /v1/jobs with unique_key and debounce_s: what a frontend sees."""

from __future__ import annotations

import pytest

JOB = {"kind": "leaderboard.refresh", "payload": {"limit": 5}, "unique_key": "board"}


async def test_a_unique_key_answers_with_the_active_job_and_a_debounce_replaces_it(api):
    first = await api.post("/v1/jobs", who="root", json=JOB)
    assert first.status_code == 201 and first.json()["unique_key"] == "board"
    again = await api.post("/v1/jobs", who="root", json={**JOB, "payload": {"limit": 9}})
    assert again.status_code == 200 and again.headers["Unique-Existing"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["payload"]["limit"] == 5
    assert again.headers["Location"] == f"/v1/jobs/{first.json()['id']}"

    debounced = await api.post(
        "/v1/jobs", who="root", json={**JOB, "payload": {"limit": 7}, "debounce_s": 60}
    )
    assert debounced.status_code == 200 and debounced.headers["Debounced"] == "true"
    body = debounced.json()
    assert body["id"] == first.json()["id"] and body["payload"]["limit"] == 7
    assert body["run_at"] > first.json()["run_at"]
    mine = await api.post(
        "/v1/jobs",
        who="alice",
        json={**JOB, "kind": "strategy.optimize", "payload": {"symbols": ["IBM"]}},
    )
    assert mine.status_code == 201  # keys are per owner


async def test_an_idempotency_key_still_replays_beside_a_unique_key(api):
    body = {**JOB, "idempotency_key": "once"}
    first = await api.post("/v1/jobs", who="root", json=body)
    again = await api.post("/v1/jobs", who="root", json=body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and "Unique-Existing" not in again.headers


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({**JOB, "unique_key": None, "debounce_s": 5}, "debounce_s: give a unique_key too"),
        ({**JOB, "debounce_s": 5, "delay_s": 3}, "give neither run_at nor delay_s"),
        ({**JOB, "debounce_s": 0}, "debounce_s"),
        ({**JOB, "unique_key": ""}, "unique_key"),
    ],
)
async def test_bad_unique_or_debounce_fields_are_422s_that_say_why(api, body, says):
    r = await api.post("/v1/jobs", who="root", json=body)
    assert r.status_code == 422 and says in r.text, r.text


async def test_a_batch_refuses_a_unique_key_and_says_where(api):
    r = await api.post("/v1/jobs/batch", who="root", json={"jobs": [{"kind": "demo.noop"}, JOB]})
    assert r.status_code == 422
    assert r.json()["error"]["message"].startswith("jobs[1]: unique_key: submit jobs with a")


async def test_depends_on_waits_refuses_others_jobs_and_failed_parents(api, store):
    parent = (await api.post("/v1/jobs", json={"kind": "demo.noop"})).json()
    r = await api.post("/v1/jobs", json={"kind": "demo.noop", "depends_on": [parent["id"]]})
    assert r.status_code == 201 and r.json()["state"] == "waiting"
    waiting = (await api.get("/v1/jobs?state=waiting")).json()["jobs"]
    assert [j["id"] for j in waiting] == [r.json()["id"]]

    r = await api.post(
        "/v1/jobs", who="bob", json={"kind": "demo.noop", "depends_on": [parent["id"]]}
    )
    assert r.status_code == 422
    assert r.json()["error"]["message"] == f"depends_on: there is no job {parent['id']} of yours"
    r = await api.post(
        "/v1/jobs", who="root", json={"kind": "demo.noop", "depends_on": [parent["id"]]}
    )
    assert r.status_code == 201  # an admin may depend on anyone's

    await api.post(f"/v1/jobs/{parent['id']}/cancel")
    r = await api.post("/v1/jobs", json={"kind": "demo.noop", "depends_on": [parent["id"]]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "parent_failed"
    assert "retry it first" in r.json()["error"]["message"]
    cancelled = (await api.get(f"/v1/jobs/{waiting[0]['id']}")).json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["errors"][-1]["message"] == f"job {parent['id']} it depends on ended cancelled"

    r = await api.post("/v1/jobs", json={"kind": "demo.noop", "depends_on": [1], "unique_key": "x"})
    assert r.status_code == 422 and "not both" in r.text
    r = await api.post("/v1/jobs/batch", json={"jobs": [{"kind": "demo.noop", "depends_on": [1]}]})
    assert r.status_code == 422 and "jobs[0]: depends_on" in r.text
