"""/v1/stats: per-kind figures from what a real worker finished, queue depth over time, and
the window's validation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobs.model import NewJob
from tests.support import eventually


async def test_a_real_workers_jobs_show_per_kind_with_wait_run_and_failure_rate(live):
    client, auth = live
    jobs = [
        *({"kind": "demo.noop"} for _ in range(3)),
        {"kind": "demo.fail", "payload": {"times": 1}, "max_attempts": 1},  # dead
        {"kind": "demo.fail", "payload": {"times": 1}, "max_attempts": 3},  # retried, then ok
        {"kind": "demo.sleep", "payload": {"seconds": 0.3}},
        {"kind": "demo.sleep", "payload": {"seconds": 0.3}},
    ]
    for job in jobs:
        r = await client.post("/v1/jobs", json=job, headers=auth["alice"])
        assert r.status_code == 201, r.text

    async def shown():
        r = await client.get("/v1/stats/kinds?window=1h&kind=demo.fail", headers=auth["root"])
        assert r.status_code == 200, r.text
        body = r.json()
        kinds = {k["kind"]: k for k in body["kinds"]}
        done = (
            kinds.get("demo.noop", {}).get("succeeded") == 3
            and kinds.get("demo.sleep", {}).get("succeeded") == 2
            and kinds.get("demo.fail", {}).get("finished") == 2
        )
        return done and body

    body = await eventually(shown, timeout=30, interval=0.5)
    kinds = {k["kind"]: k for k in body["kinds"]}
    fail, sleep, noop = kinds["demo.fail"], kinds["demo.sleep"], kinds["demo.noop"]
    assert (fail["succeeded"], fail["dead"], fail["retried"]) == (1, 1, 1)
    assert fail["failure_rate"] == 0.5
    assert noop["failure_rate"] == 0.0 and noop["dead"] == 0
    assert 0.1 < sleep["run_p50_s"] <= 0.5 and 0.1 < sleep["run_p95_s"] <= 0.5  # ran 0.3 s
    assert noop["run_p95_s"] < 0.1
    for k in (fail, sleep, noop):
        # due → claimed: a worker idle on NOTIFY claims a new job at once (a retry's backoff
        # is counted from when it is due again, not from its submission)
        assert 0 <= k["wait_p50_s"] <= k["wait_p95_s"] < 5, k
        assert k["over_last_bound"] == []
    assert (body["window"], body["bucket_minutes"], len(body["series"]["points"])) == ("1h", 1, 60)
    points = body["series"]["points"]
    assert sum(p["dead"] for p in points) == 1 and sum(p["succeeded"] for p in points) == 1
    assert [p["bucket"] for p in points] == sorted(p["bucket"] for p in points)

    day = await client.get("/v1/stats/kinds?window=24h", headers=auth["root"])
    assert day.status_code == 200 and day.json()["bucket_minutes"] == 60
    day_kinds = {k["kind"]: k["finished"] for k in day.json()["kinds"]}
    assert day_kinds["demo.noop"] == 3 and day.json()["series"] is None

    users = await client.get("/v1/stats/kinds", headers=auth["alice"])
    assert users.status_code == 403  # the whole deployment's figures


@pytest.mark.parametrize("path", ["/v1/stats/kinds", "/v1/stats/depth"])
@pytest.mark.parametrize("query", ["window=2h", "window=", "window=1H"])
async def test_a_window_is_1h_or_24h(api, path, query):
    r = await api.get(f"{path}?{query}", who="root")
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and "'1h' or '24h'" in error["message"], error


async def test_a_series_kind_is_validated(api):
    r = await api.get("/v1/stats/kinds?kind=a%20b", who="root")
    assert r.status_code == 422 and "kind" in r.json()["error"]["message"], r.text


async def test_queue_depth_over_the_last_hour_and_day(api, store):
    for queue, count in (("mail", 3), ("video", 1)):
        for _ in range(count):
            await store.enqueue(NewJob(kind="demo.noop", queue=queue))
    await store.claim(["video"], 1, "w", 30)
    now = await store.now()
    earlier = now - timedelta(minutes=5)
    assert (await store.sample_depth(now=earlier)).sampled
    for job in await store.claim(["mail"], 3, "w", 30):
        assert job.queue == "mail"
    await store.sample_depth(now=now)  # now's minute: mail's 3 running, video's 1 running

    r = await api.get("/v1/stats/depth?window=1h", who="root")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["window"], body["bucket_minutes"], len(body["buckets"])) == ("1h", 1, 60)
    # found by their starts: the API's clock may have passed into the next minute
    starts = [datetime.fromisoformat(b.replace("Z", "+00:00")) for b in body["buckets"]]
    then, this = (starts.index(t.replace(second=0, microsecond=0)) for t in (earlier, now))
    assert this - then == 5
    lines = {q["queue"]: q for q in body["queues"]}
    assert set(lines) == {"mail", "video"}
    assert lines["mail"]["queued"][then] == 3 and lines["mail"]["running"][then] == 0
    assert lines["mail"]["queued"][this] == 0 and lines["mail"]["running"][this] == 3
    assert lines["video"]["running"][then] == 1 and lines["video"]["running"][this] == 1
    sampled = {i for i, v in enumerate(lines["mail"]["queued"]) if v is not None}
    assert sampled == {then, this}  # nobody sampled the other minutes: null, not zero

    day = (await api.get("/v1/stats/depth?window=24h", who="root")).json()
    assert (day["bucket_minutes"], len(day["buckets"])) == (5, 288)
    mail = next(q for q in day["queues"] if q["queue"] == "mail")
    assert max(v for v in mail["queued"] if v is not None) == 3  # the most of its 5 minutes

    assert (await api.get("/v1/stats/depth", who="alice")).status_code == 403
