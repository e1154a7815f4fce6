"""The jobs browser's statements: listing by every state (scheduled and retrying among
them), search by id, idempotency key or payload text in bounded windows, capped counts per
state, and bulk cancel, retry and delete (audited) over a selection."""

import asyncio
from datetime import UTC, datetime, timedelta

import jobs.store
from jobs.model import BrowseState, JobState, NewJob
from jobs.store import JobFilter, RetryFilter, Store
from jobs.transitions import Failure, Success


async def _in_every_state(store: Store) -> dict[str, int]:
    """One job in each browse state; returns the ids by state."""
    ids: dict[str, int] = {}
    ids["succeeded"] = (await store.enqueue(NewJob(kind="ok", payload={"symbol": "IBM"}))).id
    [job] = await store.claim(["default"], 1, "w", 30)
    assert await store.complete(job, Success({"n": 1}))
    ids["dead"] = (await store.enqueue(NewJob(kind="bad", max_attempts=1))).id
    [job] = await store.claim(["default"], 1, "w", 30)
    assert await store.complete(job, Failure("E", "boom"))
    ids["retrying"] = (await store.enqueue(NewJob(kind="flaky", max_attempts=3))).id
    [job] = await store.claim(["default"], 1, "w", 30)
    assert await store.complete(job, Failure("E", "once"))  # retried after its backoff
    ids["running"] = (await store.enqueue(NewJob(kind="slow"))).id
    [job] = await store.claim(["default"], 1, "w", 30)
    ids["scheduled"] = (await store.enqueue(NewJob(kind="later", run_after_s=3600))).id
    ids["queued"] = (
        await store.enqueue(NewJob(kind="now", idempotency_key="nightly-2026-12-02"))
    ).id
    ids["cancelled"] = (await store.enqueue(NewJob(kind="gone"))).id
    await store.cancel(ids["cancelled"])
    ids["waiting"] = (await store.submit_after(NewJob(kind="then"), [ids["running"]]))[0].id
    return ids


async def _listed(store: Store, **where) -> list[int]:
    return [j.id for j in (await store.list_jobs(JobFilter(**where), limit=100)).jobs]


async def test_every_state_lists_its_jobs_and_counts_them(store):
    ids = await _in_every_state(store)
    for state in ("waiting", "running", "succeeded", "dead", "cancelled"):
        assert await _listed(store, states=[BrowseState(state)]) == [ids[state]], state
    assert await _listed(store, states=[BrowseState.SCHEDULED]) == [ids["scheduled"]]
    assert await _listed(store, states=[BrowseState.RETRYING]) == [ids["retrying"]]
    queued = await _listed(store, states=[BrowseState.QUEUED])
    assert {ids["scheduled"], ids["retrying"], ids["queued"]} <= set(queued)
    counts = await store.count_jobs(JobFilter())
    assert list(counts) == list(BrowseState)  # every state, in the browser's order
    assert counts[BrowseState.SCHEDULED] == 1 and counts[BrowseState.RETRYING] == 1
    assert counts[BrowseState.QUEUED] == len(queued)
    assert counts[BrowseState.DEAD] == 1 and counts[BrowseState.RUNNING] == 1
    narrowed = await store.count_jobs(JobFilter(kinds=["bad", "ok"]))
    assert {s for s, n in narrowed.items() if n} == {BrowseState.DEAD, BrowseState.SUCCEEDED}


async def test_a_count_stops_one_past_its_cap(store):
    await store.enqueue_many([NewJob(kind="k") for _ in range(30)])
    counts = await store.count_jobs(JobFilter(), cap=10)
    assert counts[BrowseState.QUEUED] == 11  # more than 10
    assert counts[BrowseState.DEAD] == 0


async def test_owners_and_filters_narrow_the_listing(store):
    mine = (await store.enqueue(NewJob(kind="k", owner="key:alice", queue="q1"))).id
    theirs = (await store.enqueue(NewJob(kind="k", owner="key:bob", queue="q2"))).id
    assert await _listed(store, owner="key:alice") == [mine]
    assert await _listed(store, queues=["q2"]) == [theirs]
    assert await _listed(store, kinds=["other"]) == []
    counts = await store.count_jobs(JobFilter(owner="key:bob"))
    assert counts[BrowseState.QUEUED] == 1


async def test_search_finds_an_id_a_key_or_payload_text(store):
    ids = await _in_every_state(store)
    assert await _listed(store, search=str(ids["dead"])) == [ids["dead"]]
    assert await _listed(store, search=f"#{ids['dead']}") == [ids["dead"]]
    assert await _listed(store, search="nightly-2026-12-02") == [ids["queued"]]
    assert await _listed(store, search="ibm") == [ids["succeeded"]]  # case-insensitive
    assert await _listed(store, search="100%") == []  # `%` is text, not a wildcard
    assert await _listed(store, search="²") == []  # a digit to str.isdigit, not an id
    assert await _listed(store, search="IBM", owner="key:someone") == []


async def test_a_text_search_reads_a_bounded_window_and_says_where_to_go_on(store, monkeypatch):
    monkeypatch.setattr(jobs.store, "SEARCH_SPAN", 10)
    first = await store.enqueue(NewJob(kind="k", payload={"note": "needle"}))
    await store.enqueue_many([NewJob(kind="k", payload={"note": "hay"}) for _ in range(25)])
    last = await store.enqueue(NewJob(kind="k", payload={"note": "needle"}))
    where = JobFilter(search="needle")
    page = await store.list_jobs(where, limit=5)
    assert [j.id for j in page.jobs] == [last.id]  # only the newest 10 ids were read
    assert page.next_before == last.id - 9
    found, cursor, calls = [j.id for j in page.jobs], page.next_before, 1
    while cursor is not None:
        page = await store.list_jobs(where, before_id=cursor, limit=5)
        found += [j.id for j in page.jobs]
        cursor, calls = page.next_before, calls + 1
    assert found == [last.id, first.id]
    assert calls == 3  # 27 ids, ten a call; the last call stops at the lowest id


async def test_bulk_cancel_cancels_queued_asks_running_and_leaves_finished(store):
    ids = await _in_every_state(store)
    selection = [ids["queued"], ids["running"], ids["dead"], ids["waiting"], 10**12]
    results = {r.job_id: r for r in await store.cancel_many(selection, by="key:root")}
    assert set(results) == {ids["queued"], ids["running"], ids["dead"], ids["waiting"]}
    assert results[ids["queued"]].state is JobState.CANCELLED
    assert results[ids["waiting"]].state is JobState.CANCELLED
    assert results[ids["running"]].requested
    assert results[ids["dead"]].state is JobState.DEAD
    assert await store.cancel_many([ids["queued"]], owner="key:alice") == []  # not hers


async def test_two_bulk_cancels_over_the_same_jobs_never_deadlock(store, db_url):
    queued = [e.id for e in await store.enqueue_many([NewJob(kind="k") for _ in range(200)])]
    for _ in range(running := 50):
        await store.claim(["default"], 1, "w", 30)
    other = await Store.connect(db_url)
    try:
        forward, backward = await asyncio.wait_for(
            asyncio.gather(
                store.cancel_many(queued, by="a"), other.cancel_many(queued[::-1], by="b")
            ),
            timeout=30,
        )
    finally:
        await other.close()
    assert len(forward) == len(backward) == 200
    states = await store.states_of(queued, owner=None)
    assert sorted(states.values()).count(JobState.CANCELLED) == 200 - running


async def test_bulk_delete_removes_finished_jobs_and_audits_who(store):
    ids = await _in_every_state(store)
    selection = [ids["succeeded"], ids["dead"], ids["running"], ids["queued"]]
    deleted = await store.delete_jobs(selection, by="key:root")
    assert deleted == sorted([ids["succeeded"], ids["dead"]])
    remaining = await store.states_of(selection, owner=None)
    assert remaining == {ids["running"]: JobState.RUNNING, ids["queued"]: JobState.QUEUED}
    assert await store.events(ids["dead"]) == []
    [event] = await store.audit_events()
    assert (event["actor"], event["action"]) == ("key:root", "jobs.deleted")
    assert event["data"] == {"ids": deleted, "count": 2}
    assert await store.delete_jobs([ids["running"]], by="key:root") == []
    assert len(await store.audit_events()) == 1  # nothing deleted, nothing recorded


async def test_bulk_retry_of_a_selection_replays_only_dead_and_cancelled(store):
    ids = await _in_every_state(store)
    selection = [ids["dead"], ids["cancelled"], ids["succeeded"]]
    replayed = await store.retry_many(RetryFilter(states=frozenset(), ids=selection), by="x")
    assert replayed == []  # no replayable state named: nothing
    replayed = await store.retry_many(
        RetryFilter(states=frozenset({JobState.DEAD, JobState.CANCELLED}), ids=selection), by="x"
    )
    assert sorted(replayed) == sorted([ids["dead"], ids["cancelled"]])
    assert (await store.get(ids["succeeded"])).state is JobState.SUCCEEDED


async def test_a_brief_listing_leaves_out_payloads_results_and_old_errors(store):
    enq = await store.enqueue(NewJob(kind="k", payload={"big": "x" * 5000}, max_attempts=3))
    for attempt in (1, 2):  # a clock hours ahead: each retry is due, whatever its backoff
        later = datetime.now(UTC) + timedelta(hours=attempt)
        [job] = await store.claim(["default"], 1, "w", 30, now=later)
        failure = Failure("E", f"attempt {attempt}", traceback="Traceback: line")
        assert await store.complete(job, failure, now=later)
    [full] = (await store.list_jobs(JobFilter())).jobs
    [brief] = (await store.list_jobs(JobFilter(), brief=True)).jobs
    assert len(full.errors) == 2 and full.errors[-1]["traceback"]
    assert (brief.payload, brief.result) == (None, None)
    assert [e["message"] for e in brief.errors] == ["attempt 2"]
    assert "traceback" not in brief.errors[0]
    same = ("id", "state", "attempt", "kind", "owner", "created_at", "run_at")
    assert all(getattr(brief, f) == getattr(full, f) for f in same)
    [found] = (await store.list_jobs(JobFilter(search="xxxx"), brief=True)).jobs
    assert found.id == enq.id  # the search still reads the payload


async def test_a_listing_by_kind_reads_a_bounded_window_too(store, monkeypatch):
    monkeypatch.setattr(jobs.store, "SCAN_SPAN", 10)
    rare = await store.enqueue(NewJob(kind="rare"))
    await store.enqueue_many([NewJob(kind="common") for _ in range(25)])
    page = await store.list_jobs(JobFilter(kinds=["rare"]), limit=5)
    assert page.jobs == [] and page.next_before is not None  # none in the newest 10 ids
    found, cursor = [], page.next_before
    while cursor is not None:
        page = await store.list_jobs(JobFilter(kinds=["rare"]), before_id=cursor, limit=5)
        found += [j.id for j in page.jobs]
        cursor = page.next_before
    assert found == [rare.id]
    whole = await store.list_jobs(JobFilter(states=[BrowseState.QUEUED]), limit=5)
    assert len(whole.jobs) == 5  # no kind or queue: no window
