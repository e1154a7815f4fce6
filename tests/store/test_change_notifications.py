"""Every statement that changes what a job's stream shows sends one CHANGES_CHANNEL
notification naming the jobs it changed, whatever the number of rows (the claim and the
common finish through `Store.notices`, just after their commits)."""

import asyncio

from jobs.model import NewJob
from jobs.sql import CHANGES_CHANNEL
from jobs.transitions import Failure, Success


class Listener:
    """Hears what is sent from the moment it enters: what the store still had to send
    (`Store.notices` sends after each commit) goes first."""

    def __init__(self, store, conn):
        self.store, self.conn, self.payloads = store, conn, asyncio.Queue()

    async def __aenter__(self):
        await self.store.notices.flush()
        await self.conn.add_listener(CHANGES_CHANNEL, self._got)
        return self

    async def __aexit__(self, *exc):
        await self.conn.remove_listener(CHANGES_CHANNEL, self._got)

    def _got(self, conn, pid, channel, payload):
        self.payloads.put_nowait(payload)

    async def next_ids(self):
        payload = await asyncio.wait_for(self.payloads.get(), timeout=5)
        return payload if payload == "*" else sorted(int(i) for i in payload.split(","))

    async def nothing_more(self):
        await self.store.notices.flush()
        await self.conn.execute("SELECT 1")  # a round trip delivers anything pending
        assert self.payloads.empty(), self.payloads.get_nowait()


async def test_claim_finish_progress_cancel_and_retry_notify_the_changed_ids(store, conn):
    ids = [(await store.enqueue(NewJob(kind="k", max_attempts=1))).id for _ in range(3)]
    async with Listener(store, conn) as heard:
        claimed = await store.claim(["default"], 3, "w", 30)
        assert await heard.next_ids() == ids  # one notification for the whole claim

        assert await store.report_progress(claimed[0].lease, 40, "half")
        assert await heard.next_ids() == [ids[0]]

        assert (await store.cancel(ids[1])).requested
        assert await heard.next_ids() == [ids[1]]

        assert await store.complete(claimed[0], Success({"ok": 1}))
        assert await heard.next_ids() == [ids[0]]
        assert await store.complete(claimed[2], Failure("E", "boom"))  # dead: one attempt
        assert await heard.next_ids() == [ids[2]]

        await store.retry(ids[2])
        assert await heard.next_ids() == [ids[2]]
        await heard.nothing_more()


async def test_a_statement_that_changes_nothing_sends_nothing(store, conn):
    job_id = (await store.enqueue(NewJob(kind="k"))).id
    [claimed] = await store.claim(["default"], 1, "w", 30)
    assert await store.complete(claimed, Success(None))
    async with Listener(store, conn) as heard:
        assert await store.claim(["default"], 10, "w", 30) == []
        assert not await store.report_progress(claimed.lease, 50)  # lease is gone
        assert not (await store.cancel(job_id)).requested  # already finished
        await heard.nothing_more()


async def test_a_claim_too_big_for_one_notification_is_split_and_misses_no_id(store, conn):
    ids = [e.id for e in await store.enqueue_many([NewJob(kind="k") for _ in range(2000)])]
    async with Listener(store, conn) as heard:
        assert len(await store.claim(["default"], 2000, "w", 30)) == 2000
        got = await heard.next_ids()  # 2,000 ids and their commas: more than 7,900 bytes
        assert got != "*" and len(got) < 2000
        while len(got) < 2000:
            got += await heard.next_ids()
        assert sorted(got) == sorted(ids)
        await heard.nothing_more()


async def test_a_statement_with_too_many_ids_for_one_notification_sends_a_wildcard(store, conn):
    ids = [e.id for e in await store.enqueue_many([NewJob(kind="k") for _ in range(2000)])]
    async with Listener(store, conn) as heard:
        assert len(await store.cancel_many(ids)) == 2000
        assert await heard.next_ids() == "*"
