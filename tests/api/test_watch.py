"""JobWatch: one LISTEN connection fans job-change notifications out to the streams that
follow those jobs, and comes back by itself when its connection is killed."""

from __future__ import annotations

import asyncio

from api.stream import JobWatch, event_type
from jobs.sql import CHANGES_CHANNEL
from tests.support import eventually


async def notify(conn, payload: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, payload)


async def test_followers_of_the_named_ids_are_woken_and_no_others(db_url, conn):
    watch = JobWatch(db_url)
    await watch.start()
    try:
        await asyncio.wait_for(watch.listening.wait(), 10)
        with watch.follow(1) as one, watch.follow(2) as two, watch.follow(1) as one_again:
            one.clear(), two.clear(), one_again.clear()  # the connect woke everybody
            await notify(conn, "1,3")
            await asyncio.wait_for(one.wait(), 5)
            await asyncio.wait_for(one_again.wait(), 5)
            assert not two.is_set()
            await notify(conn, "*")
            await asyncio.wait_for(two.wait(), 5)
        assert watch._followers == {}  # leaving a stream leaves nothing behind
    finally:
        await watch.stop()


async def test_the_listener_reconnects_and_wakes_everyone_after_losing_its_connection(db_url, conn):
    watch = JobWatch(db_url)
    await watch.start()
    try:
        await asyncio.wait_for(watch.listening.wait(), 10)
        with watch.follow(7) as seven:
            seven.clear()
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
            assert killed == 1
            await eventually(lambda: not watch.listening.is_set(), 10)
            await asyncio.wait_for(watch.listening.wait(), 10)
            assert seven.is_set()  # a change made while nobody listened is not missed
            seven.clear()
            await notify(conn, "7")
            await asyncio.wait_for(seven.wait(), 5)
    finally:
        await watch.stop()


def test_event_type_is_progress_only_when_nothing_else_moved():
    base = {"state": "running", "attempt": 1, "progress": 10, "progress_message": "a"}
    assert event_type(None, base) == "state"
    assert event_type(base, {**base, "progress": 20, "progress_message": "b"}) == "progress"
    assert event_type(base, {**base, "progress": 100, "state": "succeeded"}) == "state"
    assert event_type(base, {**base, "attempt": 2}) == "state"
