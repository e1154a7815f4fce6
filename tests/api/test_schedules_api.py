"""/v1/schedules: admin-only CRUD with cron, timezone, kind and payload checked; trigger;
and an edit through a real API reaching a real worker's scheduler within seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

NIGHTLY = {"name": "nightly", "cron": "30 21 * * 1-5", "kind": "demo.sleep"}


async def test_users_may_not_touch_schedules(api):
    for method, path in (
        ("GET", "/v1/schedules"),
        ("POST", "/v1/schedules"),
        ("GET", "/v1/schedules/x"),
        ("PATCH", "/v1/schedules/x"),
        ("DELETE", "/v1/schedules/x"),
        ("POST", "/v1/schedules/x/trigger"),
    ):
        r = await api.client.request(method, path, headers=api.auth("alice"), json={})
        assert r.status_code == 403, (method, path, r.text)


async def test_create_read_list_and_a_taken_name(api):
    r = await api.post("/v1/schedules", "root", json={**NIGHTLY, "timezone": "America/New_York"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["payload"] == {"seconds": 1.0}  # the kind's defaults filled in
    assert (made["catch_up_s"], made["enabled"], made["last_fire_at"]) == (600, True, None)
    assert (await api.get("/v1/schedules/nightly", "root")).json() == made
    assert [s["name"] for s in (await api.get("/v1/schedules", "root")).json()] == ["nightly"]
    again = await api.post("/v1/schedules", "root", json=NIGHTLY)
    assert again.status_code == 409 and again.json()["error"]["code"] == "schedule_exists"
    assert (await api.get("/v1/schedules/nope", "root")).status_code == 404


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"cron": "61 * * * *"}, "invalid_cron", "61"),
        ({"cron": "* * * *"}, "invalid_cron", "5 fields"),
        ({"timezone": "Mars/Olympus"}, "invalid_cron", "unknown timezone"),
        ({"kind": "prices.nope"}, "unknown_kind", "known kinds"),
        ({"payload": {"seconds": -1}}, "invalid_payload", "payload.seconds"),
        ({"name": "has:colon"}, "invalid_request", "name"),
    ],
)
async def test_a_bad_schedule_answers_422_saying_what_is_wrong(api, change, code, says):
    r = await api.post("/v1/schedules", "root", json={**NIGHTLY, **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and says in error["message"]


async def test_a_new_timing_restarts_the_clock_other_edits_keep_it(api, conn):
    await api.post("/v1/schedules", "root", json=NIGHTLY)
    fired = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)
    await conn.execute("UPDATE schedule SET last_fire_at = $1", fired)
    r = await api.client.patch(
        "/v1/schedules/nightly", headers=api.auth("root"), json={"payload": {"seconds": 2}}
    )
    assert r.status_code == 200 and r.json()["payload"] == {"seconds": 2.0}
    assert r.json()["last_fire_at"] == "2026-11-20T21:30:00Z"
    r = await api.client.patch(
        "/v1/schedules/nightly", headers=api.auth("root"), json={"cron": "0 * * * *"}
    )
    assert r.json()["cron"] == "0 * * * *" and r.json()["last_fire_at"] is None
    bad = await api.client.patch(
        "/v1/schedules/nightly", headers=api.auth("root"), json={"cron": "nope nope"}
    )
    assert bad.status_code == 422
    assert (await api.get("/v1/schedules/nightly", "root")).json()["cron"] == "0 * * * *"


async def test_delete_and_trigger(api):
    await api.post("/v1/schedules", "root", json=NIGHTLY)
    r = await api.post("/v1/schedules/nightly/trigger", "root")
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["kind"], job["owner"], job["state"]) == ("demo.sleep", "system", "queued")
    assert job["idempotency_key"].startswith("trigger:nightly:")
    deleted = await api.client.delete("/v1/schedules/nightly", headers=api.auth("root"))
    assert deleted.status_code == 204
    assert (
        await api.client.delete("/v1/schedules/nightly", headers=api.auth("root"))
    ).status_code == 404
    assert (await api.post("/v1/schedules/nightly/trigger", "root")).status_code == 404


@pytest.mark.slow
async def test_an_api_edit_reaches_a_running_worker_within_five_seconds(live, conn):
    client, auth = live
    body = {"name": "tick", "cron": "* * * * * *", "kind": "demo.noop"}
    assert (await client.post("/v1/schedules", json=body, headers=auth["root"])).status_code == 201

    async def fires_after(t: datetime) -> list[datetime]:
        rows = await conn.fetch(
            "SELECT idempotency_key FROM job WHERE idempotency_key LIKE 'cron:tick:%'"
        )
        times = [
            datetime.fromisoformat(r["idempotency_key"].split(":", 2)[2].replace("Z", "+00:00"))
            for r in rows
        ]
        return sorted(f for f in times if f > t)

    await asyncio.sleep(3)
    assert await fires_after(datetime.now(UTC) - timedelta(seconds=10))  # it runs
    r = await client.patch("/v1/schedules/tick", json={"enabled": False}, headers=auth["root"])
    assert r.status_code == 200
    edited = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(7)
    assert await fires_after(edited + timedelta(seconds=5)) == []


async def test_two_edits_at_once_both_land(api):
    """Each PATCH reads the schedule and writes it back: without holding the row between
    the two, the later write put back the earlier one's field as it was."""
    assert (await api.post("/v1/schedules", "root", json=NIGHTLY)).status_code == 201
    for i in range(15):
        priority, queue = i + 1, f"q{i}"
        a, b = await asyncio.gather(
            api.client.patch(
                "/v1/schedules/nightly", json={"priority": priority}, headers=api.auth("root")
            ),
            api.client.patch(
                "/v1/schedules/nightly", json={"queue": queue}, headers=api.auth("root")
            ),
        )
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        now = (await api.get("/v1/schedules/nightly", "root")).json()
        assert (now["priority"], now["queue"]) == (priority, queue), i


async def test_a_patch_field_sent_as_null_is_refused_by_name(api):
    assert (await api.post("/v1/schedules", "root", json=NIGHTLY)).status_code == 201
    for field, says in (("enabled", "not null"), ("catch_up_s", "give a value")):
        r = await api.client.patch(
            "/v1/schedules/nightly", json={field: None}, headers=api.auth("root")
        )
        assert r.status_code == 422, r.text
        assert f"{field}: " in r.json()["error"]["message"], r.text
        assert says in r.json()["error"]["message"], r.text
    schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["SchedulePatch"]["properties"]["enabled"]["type"] == "boolean"  # not null


async def test_a_schedules_follow_ups_are_checked_and_a_trigger_makes_the_chain(api):
    bad = {**NIGHTLY, "follow_ups": [{"kind": "leaderboard.refresh", "payload": {"limit": 0}}]}
    r = await api.post("/v1/schedules", "root", json=bad)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("follow_ups[0]: ")
    chain = [{"kind": "demo.noop"}, {"kind": "leaderboard.refresh", "payload": {"limit": 3}}]
    r = await api.post("/v1/schedules", "root", json={**NIGHTLY, "follow_ups": chain})
    assert r.status_code == 201, r.text
    assert [f["kind"] for f in r.json()["follow_ups"]] == ["demo.noop", "leaderboard.refresh"]
    assert r.json()["follow_ups"][1]["payload"]["limit"] == 3  # as the kind's model reads it
    head = (await api.post("/v1/schedules/nightly/trigger", "root")).json()
    jobs = (await api.get("/v1/jobs?limit=10", who="root")).json()["jobs"]
    follow = sorted((j for j in jobs if j["id"] != head["id"]), key=lambda j: j["id"])
    assert [(j["kind"], j["state"]) for j in follow] == [
        ("demo.noop", "waiting"),
        ("leaderboard.refresh", "waiting"),
    ]
    assert follow[0]["idempotency_key"] == f"{head['idempotency_key']}:then:1"
    r = await api.client.patch(
        "/v1/schedules/nightly", json={"follow_ups": []}, headers=api.auth("root")
    )
    assert r.status_code == 200 and r.json()["follow_ups"] == []
