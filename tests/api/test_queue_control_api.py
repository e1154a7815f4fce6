"""PATCH /v1/queues/{name}: an admin pauses, resumes and limits a queue; everything else is
refused with a reason; GET /v1/queues shows the controls."""

from __future__ import annotations

import pytest


async def patch(api, path: str, body: object, who: str = "root"):
    return await api.client.patch(path, json=body, headers=api.auth(who))


async def test_an_admin_pauses_limits_and_resumes_a_queue_and_the_listing_shows_it(api):
    r = await patch(api, "/v1/queues/prices", {"paused": True})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["concurrency"] is None
    assert r.json()["updated_by"] == "key:root"
    r = await patch(api, "/v1/queues/prices", {"concurrency": 2})
    assert (r.json()["paused"], r.json()["concurrency"]) == (True, 2)  # the pause stays
    listed = {q["queue"]: q for q in (await api.get("/v1/queues", who="alice")).json()}
    assert (listed["prices"]["paused"], listed["prices"]["concurrency"]) == (True, 2)
    assert listed["prices"]["queued"] == 0  # listed with no job in it
    r = await patch(api, "/v1/queues/prices", {"paused": False, "concurrency": None})
    assert (r.json()["paused"], r.json()["concurrency"]) == (False, None)
    listed = {q["queue"]: q for q in (await api.get("/v1/queues", who="root")).json()}
    assert "prices" not in listed  # nothing in it, nothing controlled


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "send paused, concurrency, or both"),
        ({"paused": None}, "paused: Input should be true or false, not null"),
        ({"concurrency": -1}, "greater than or equal to 0"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"paused": "yes"}, "paused"),
        ({"limit": 3}, "limit"),
    ],
)
async def test_a_bad_patch_is_a_422_that_names_the_problem(api, body, says):
    r = await patch(api, "/v1/queues/prices", body)
    assert r.status_code == 422, r.text
    assert says in r.text


async def test_only_admins_control_queues_and_names_are_checked(api):
    r = await patch(api, "/v1/queues/prices", {"paused": True}, who="alice")
    assert r.status_code == 403
    r = await api.client.patch("/v1/queues/prices", json={"paused": True})
    assert r.status_code == 401
    r = await patch(api, "/v1/queues/no%20spaces", {"paused": True})
    assert r.status_code == 422
    r = await patch(api, "/v1/queues/" + "q" * 129, {"paused": True})
    assert r.status_code == 422
