"""The worker table on real Postgres: what a worker publishes of itself, jobs done added by
heartbeats, the jobs one worker holds, and the kind catalogue read from live workers and
the per-minute aggregates."""

from jobs.metrics import MinuteCounts, minute_of
from jobs.model import NewJob

KINDS = [
    {"kind": "demo.sleep", "timeout_s": None, "cpu_bound": False},
    {"kind": "demo.cpu", "timeout_s": 30.0, "cpu_bound": True},
]


async def test_a_worker_publishes_its_version_and_kinds_and_heartbeats_add_jobs_done(store):
    await store.register_worker("h:1:a", "h", 1, ["default"], 4, version="1.2.3", kinds=KINDS)
    assert await store.worker_heartbeat("h:1:a", 3)
    assert await store.worker_heartbeat("h:1:a", 0)
    [w] = await store.live_workers()
    assert (w["version"], w["kinds"], w["jobs_done"]) == ("1.2.3", KINDS, 3)
    assert 0 <= w["heartbeat_age_s"] < 5
    # pruned during an outage: the heartbeat adds nothing, registering again carries the count
    await store.pool.execute("DELETE FROM worker")
    assert not await store.worker_heartbeat("h:1:a", 2)
    await store.register_worker("h:1:a", "h", 1, ["default"], 4, version="1.2.3", jobs_done=2)
    [again] = await store.live_workers()
    assert (again["jobs_done"], again["kinds"]) == (2, [])
    # registering over a row that is still there adds too, and refreshes what it says
    await store.register_worker("h:1:a", "h", 1, ["default"], 4, version="1.2.4", jobs_done=1)
    [w] = await store.live_workers()
    assert (w["jobs_done"], w["version"]) == (3, "1.2.4")


async def test_one_worker_with_the_jobs_it_holds_and_none_for_an_unknown_one(store):
    await store.register_worker("h:1:a", "h", 1, ["default"], 4, kinds=KINDS)
    await store.register_worker("h:2:b", "h", 2, ["default"], 4)
    for n in range(3):
        await store.enqueue(NewJob(kind="demo.sleep", payload={"n": n}, owner="key:alice"))
    mine = await store.claim(["default"], 2, "h:1:a", 30)
    await store.claim(["default"], 1, "h:2:b", 30)
    w = await store.worker("h:1:a")
    assert w is not None and w["running"] == 2 and w["kinds"] == KINDS
    assert [j["id"] for j in w["jobs"]] == sorted(j.id for j in mine)
    held = w["jobs"][0]
    assert (held["kind"], held["queue"], held["owner"], held["attempt"]) == (
        "demo.sleep",
        "default",
        "key:alice",
        1,
    )
    assert held["started_at"] is not None and held["progress"] == 0
    assert await store.worker("h:9:z") is None


async def _finished(store, kind, outcome, finished, minutes_ago):
    """As a worker's heartbeat adds its tally: that minute's row and its hour's."""
    minute = minute_of((await store.now()).timestamp()) - 60 * minutes_ago
    await store.add_minutes({(minute, "default", kind, outcome): MinuteCounts(finished)})


async def test_the_kind_catalogue_counts_live_workers_and_the_last_24_hours(store):
    await store.register_worker("h:1:a", "h", 1, ["default"], 4, kinds=KINDS)
    newer = [{"kind": "demo.sleep", "timeout_s": 5.0, "cpu_bound": False}]
    await store.pool.execute("UPDATE worker SET started_at = now() - interval '1 hour'")
    await store.register_worker("h:2:b", "h", 2, ["default"], 4, kinds=newer)
    await _finished(store, "demo.sleep", "succeeded", 9, 5)
    await _finished(store, "demo.sleep", "dead", 1, 60)
    await _finished(store, "demo.sleep", "cancelled", 4, 0)
    await _finished(store, "demo.sleep", "retried", 7, 0)  # not finished: it runs again
    await _finished(store, "demo.sleep", "succeeded", 100, 24 * 60 + 1)  # over a day ago
    await _finished(store, "prices.ingest", "dead", 2, 10)  # no live worker runs it
    catalogue = await store.kind_catalogue()
    sleep = catalogue["demo.sleep"]
    assert (sleep["workers"], sleep["timeout_s"], sleep["cpu_bound"]) == (2, 5.0, False)
    assert (sleep["succeeded_24h"], sleep["dead_24h"], sleep["cancelled_24h"]) == (9, 1, 4)
    cpu = catalogue["demo.cpu"]
    assert (cpu["workers"], cpu["timeout_s"], cpu["cpu_bound"], cpu["succeeded_24h"]) == (
        1,
        30.0,
        True,
        0,
    )
    ingest = catalogue["prices.ingest"]
    assert (ingest["workers"], ingest["timeout_s"], ingest["cpu_bound"]) == (0, None, None)
    assert ingest["dead_24h"] == 2
    assert "demo.noop" not in catalogue
