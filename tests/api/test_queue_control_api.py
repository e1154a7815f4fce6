"""PATCH /v1/queues/{name} and /v1/kinds/{kind}: an admin pauses, resumes and limits a queue,
limits a kind and sets its rate; everything else is refused with a reason; GET /v1/queues
and /v1/kinds show the controls."""

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


async def test_an_admin_limits_a_kind_and_sets_its_rate_and_the_kinds_listing_shows_it(api):
    rate = {"allowed": 2000, "period_s": 3600, "partition": "payload.provider"}
    r = await patch(api, "/v1/kinds/prices.ingest", {"concurrency": 4, "rate_limit": rate})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["concurrency"], body["owner_concurrency"]) == (4, None)
    assert body["rate_limit"] == rate and body["updated_by"] == "key:root"
    r = await patch(api, "/v1/kinds/prices.ingest", {"owner_concurrency": 1})
    assert r.json()["rate_limit"] == rate  # what is not sent stays
    kinds = {k["kind"]: k for k in (await api.get("/v1/kinds", who="alice")).json()}
    assert kinds["prices.ingest"]["rate_limit"] == rate
    assert kinds["prices.ingest"]["owner_concurrency"] == 1
    assert kinds["strategy.optimize"]["rate_limit"] is None
    r = await patch(api, "/v1/kinds/prices.ingest", {"rate_limit": None, "concurrency": None})
    assert (r.json()["rate_limit"], r.json()["concurrency"]) == (None, None)
    assert r.json()["owner_concurrency"] == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "send concurrency, owner_concurrency, rate_limit, or several"),
        ({"rate_limit": {"allowed": 0, "period_s": 1}}, "greater than or equal to 1"),
        ({"rate_limit": {"allowed": 5}}, "rate_limit.period_s: Field required"),
        ({"rate_limit": {"allowed": 5, "period_s": 0}}, "greater than or equal to 0.001"),
        ({"rate_limit": {"allowed": 5, "period_s": 1, "partition": "host"}}, "partition"),
        ({"rate_limit": {"allowed": 5, "period_s": 1, "per": "owner"}}, "per"),
        ({"concurrency": -1}, "greater than or equal to 0"),
    ],
)
async def test_a_bad_kind_patch_is_a_422_that_names_the_problem(api, body, says):
    r = await patch(api, "/v1/kinds/prices.ingest", body)
    assert r.status_code == 422, r.text
    assert says in r.text


async def test_only_admins_limit_kinds_and_only_known_kinds(api):
    r = await patch(api, "/v1/kinds/prices.ingest", {"concurrency": 1}, who="alice")
    assert r.status_code == 403
    r = await patch(api, "/v1/kinds/no.such.kind", {"concurrency": 1})
    assert r.status_code == 404 and "GET /v1/kinds lists them" in r.text
