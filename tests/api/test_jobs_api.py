"""The REST API against a real database: success and error paths, and isolation."""

from __future__ import annotations

import asyncio

import pytest

from jobs.sql import NOTIFY_CHANNEL
from stores.keys import revoke_key


async def test_health_and_ready(api):
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    ready = await api.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_submit_then_read_a_job(api):
    r = await api.post("/v1/jobs", json={"kind": "demo.sleep", "payload": {"seconds": 2}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "queued" and job["owner"] == "key:alice"
    assert job["payload"] == {"seconds": 2.0}
    got = await api.get(f"/v1/jobs/{job['id']}")
    assert got.status_code == 200 and got.json()["id"] == job["id"]


async def test_idempotency_key_in_body_or_header_replays_the_job(api):
    first = await api.post("/v1/jobs", json={"kind": "demo.noop", "idempotency_key": "k1"})
    again = await api.post(
        "/v1/jobs",
        json={"kind": "demo.noop"},
        headers={**api.auth("alice"), "Idempotency-Key": "k1"},
    )
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    bobs = await api.post(
        "/v1/jobs", who="bob", json={"kind": "demo.noop", "idempotency_key": "k1"}
    )
    assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]


async def test_users_see_only_their_jobs_and_admins_see_all(api):
    job_id = (await api.post("/v1/jobs", json={"kind": "demo.noop"})).json()["id"]
    other = await api.get(f"/v1/jobs/{job_id}", who="bob")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "job_not_found"
    assert (await api.post(f"/v1/jobs/{job_id}/cancel", who="bob")).status_code == 404
    assert (await api.get(f"/v1/jobs/{job_id}", who="root")).status_code == 200
    cancelled = await api.post(f"/v1/jobs/{job_id}/cancel", who="alice")
    assert cancelled.json() == {
        "id": job_id,
        "previous_state": "queued",
        "state": "cancelled",
        "cancel_requested": False,
    }


async def test_missing_wrong_or_revoked_keys_answer_401_with_a_challenge(api, conn):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = await api.client.get("/v1/jobs/1", headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthorized"
    await revoke_key(conn, "alice")
    assert (await api.get("/v1/jobs/1")).status_code == 401


async def test_unknown_kind_lists_the_known_ones(api):
    r = await api.post("/v1/jobs", json={"kind": "prices.nope"})
    assert r.status_code == 422
    body = r.json()["error"]
    assert body["code"] == "unknown_kind" and "demo.noop" in body["details"]["known_kinds"]


async def test_bad_payload_fields_are_named(api):
    r = await api.post("/v1/jobs", json={"kind": "demo.sleep", "payload": {"seconds": -1, "x": 1}})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_payload"
    assert {f["field"] for f in error["details"]} == {"seconds", "x"}
    assert "payload.seconds" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "demo.noop", "priority": 99999}, "priority"),
        ({"kind": "demo.noop", "max_attempts": 0}, "max_attempts"),
        ({"kind": "demo.noop", "queue": "bad queue!"}, "queue"),
        ({"kind": "demo.noop", "delay_s": 5, "run_at": "2030-01-01T00:00:00Z"}, "body"),
        ({"kind": "demo.noop", "run_at": "2030-01-01T00:00:00"}, "run_at"),  # no timezone
        ({"kind": "demo.noop", "run_at": 1893456000}, "run_at"),  # ISO 8601, not Unix time
        ({"kind": "demo.noop", "priority": True}, "priority"),  # a number, not a boolean
        ({"kind": "demo.noop", "max_attempts": "3"}, "max_attempts"),  # nor a string
        ({"kind": "demo.noop", "idempotency_key": "a\u0000b"}, "idempotency_key"),
        ({"kind": "demo.noop", "surprise": 1}, "surprise"),
        ({"payload": {}}, "kind"),
    ],
)
async def test_invalid_requests_answer_422_naming_the_field(api, body, field):
    r = await api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in {d["field"] for d in error["details"]}


async def test_malformed_json_is_422_with_the_position(api):
    r = await api.post(
        "/v1/jobs",
        content=b'{"kind": "demo.noop",',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "malformed JSON at character 21" in r.json()["error"]["message"]


async def test_bodies_over_one_mebibyte_answer_413(api):
    big = {"kind": "demo.noop", "payload": {"blob": "x" * (1024 * 1024 + 10)}}
    r = await api.post("/v1/jobs", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_delay_s_schedules_the_job_later(api):
    r = await api.post("/v1/jobs", json={"kind": "demo.noop", "delay_s": 3600})
    job = r.json()
    from datetime import datetime

    created = datetime.fromisoformat(job["created_at"])
    run_at = datetime.fromisoformat(job["run_at"])
    assert 3590 < (run_at - created).total_seconds() < 3610


async def test_unknown_routes_use_the_error_shape(api):
    r = await api.client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_payload_number_must_be_a_json_number(api):
    r = await api.post("/v1/jobs", json={"kind": "demo.sleep", "payload": {"seconds": "2"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_payload"
    assert 'not "2"' in r.json()["error"]["message"]
    ok = await api.post("/v1/jobs", json={"kind": "demo.fail", "payload": {"times": 2.0}})
    assert ok.status_code == 201 and ok.json()["payload"] == {"times": 2}  # 2.0 is an integer


async def test_a_wrong_method_answers_405_listing_every_allowed_one(api):
    r = await api.client.request("DELETE", "/v1/jobs", headers=api.auth("alice"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    r = await api.get("/v1/jobs/batch")  # not GET /v1/jobs/{id} with a bad id
    assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_a_body_that_is_not_utf8_answers_422(api):
    r = await api.post(
        "/v1/jobs", content=b'{"kind": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text


async def test_a_cursor_or_id_beyond_bigint_answers_422_or_404_not_500(api):
    assert (await api.get("/v1/jobs?cursor=9999999999999999999")).status_code == 422
    assert (await api.get(f"/v1/jobs/{2**63}")).status_code == 422
    assert (await api.get("/v1/jobs?kind=a%00b")).status_code == 422


async def test_the_openapi_schema_documents_each_kind_s_payload(api):
    schema = (await api.client.get("/openapi.json")).json()
    variants = schema["components"]["schemas"]["SubmitJob"]["oneOf"]
    by_kind = {}
    for ref in variants:
        variant = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
        by_kind[variant["properties"]["kind"]["const"]] = variant
    assert set(by_kind) == {k["kind"] for k in (await api.get("/v1/kinds")).json()}
    sleep = by_kind["demo.sleep"]["properties"]["payload"]["$ref"].rsplit("/", 1)[1]
    assert "seconds" in schema["components"]["schemas"][sleep]["properties"]


async def test_a_submit_through_the_api_wakes_its_queue(api, conn):
    heard: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    r = await api.post("/v1/jobs", json={"kind": "demo.noop", "queue": "prices"})
    assert r.status_code == 201
    assert await asyncio.wait_for(heard.get(), 5) == "prices"


@pytest.mark.parametrize("suffix", ["", "/events", "/stream", "/cancel", "/retry"])
async def test_an_id_no_bigint_can_hold_is_refused_in_the_error_shape_not_a_500(api, suffix):
    for job_id in ("9" * 5000, "9" * 19, "18446744073709551616"):
        path = f"/v1/jobs/{job_id}{suffix}"
        for client_call in (
            api.client.get(path),  # no credential at all
            api.client.post(path, headers=api.auth("alice")),
        ):
            r = await client_call
            assert r.status_code in (401, 404, 405, 422), (path[:40], r.status_code, r.text[:200])
            assert r.json()["error"]["code"], r.text[:200]


async def test_list_filters_repeat_and_any_value_matches(api):
    ids = {}
    for kind, queue in (("demo.noop", "a"), ("demo.sleep", "b"), ("demo.fail", "c")):
        r = await api.post("/v1/jobs", json={"kind": kind, "queue": queue})
        ids[kind] = r.json()["id"]

    async def listed(query: str) -> set[int]:
        r = await api.get(f"/v1/jobs?{query}")
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["jobs"]}

    both = {ids["demo.noop"], ids["demo.sleep"]}
    assert await listed("kind=demo.noop&kind=demo.sleep") == both
    assert await listed("queue=a&queue=b") == both
    assert await listed("kind=demo.noop&kind=demo.fail&queue=c") == {ids["demo.fail"]}
    assert await listed("kind=demo.noop") == {ids["demo.noop"]}
    assert (await api.get("/v1/jobs?kind=a%20b")).status_code == 422


async def test_a_wrong_method_on_an_included_router_lists_its_methods_too(api):
    r = await api.client.request("PUT", "/v1/schedules/x", headers=api.auth("root"))
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, PATCH"
    r = await api.client.request("DELETE", "/v1/jobs/1/stream", headers=api.auth("alice"))
    assert r.status_code == 405 and r.headers["allow"] == "GET"
