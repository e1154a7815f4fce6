"""Notices: notifications after the commit, coalesced while a send is in flight."""

import asyncio

import asyncpg
import pytest

from jobs import sql
from jobs.wake import Notices, change_payloads


class Heard:
    def __init__(self, conn):
        self.conn, self.got = conn, asyncio.Queue()

    async def listen(self, *channels):
        for channel in channels:
            await self.conn.add_listener(channel, self._got)
        return self

    def _got(self, conn, pid, channel, payload):
        self.got.put_nowait((channel, payload))

    async def everything(self):
        await self.conn.execute("SELECT 1")  # a round trip delivers anything pending
        out = []
        while not self.got.empty():
            out.append(self.got.get_nowait())
        return out


async def test_marks_made_while_a_send_is_in_flight_go_out_together(store, conn):
    heard = await Heard(conn).listen(sql.NOTIFY_CHANNEL)
    notices = Notices(store.pool)
    try:
        # One mark per turn of the event loop. Sent one statement per mark, each its own
        # transaction, Postgres would deliver all 1,000 (it folds duplicates only within a
        # transaction); coalesced, each send carries every mark made during the one before.
        for _ in range(1000):
            notices.wake("prices")
            await asyncio.sleep(0)
        notices.wake("reports")
        await notices.flush()
        got = await heard.everything()
        assert {p for _, p in got} == {"prices", "reports"}
        assert len(got) < 500, len(got)
        notices.wake("prices")  # and it keeps going
        await notices.flush()
        assert await heard.everything() == [(sql.NOTIFY_CHANNEL, "prices")]
    finally:
        await notices.close()


async def test_wake_ups_and_changes_go_in_one_statement_and_close_sends_what_is_marked(store, conn):
    heard = await Heard(conn).listen(sql.NOTIFY_CHANNEL, sql.CHANGES_CHANNEL)
    notices = Notices(store.pool)
    notices.wake(["a", "b"])
    notices.changed([3, 1, 2])
    notices.changed([])  # nothing to say: no notification
    await notices.close()
    assert sorted(await heard.everything()) == [
        (sql.CHANGES_CHANNEL, "1,2,3"),
        (sql.NOTIFY_CHANNEL, "a"),
        (sql.NOTIFY_CHANNEL, "b"),
    ]


async def test_a_change_waits_for_others_but_a_wake_up_goes_at_once_and_takes_it_along(store, conn):
    heard = await Heard(conn).listen(sql.NOTIFY_CHANNEL, sql.CHANGES_CHANNEL)
    notices = Notices(store.pool, changes_after_s=30.0)
    try:
        notices.changed([7])
        await asyncio.sleep(0.3)
        assert await heard.everything() == []  # still waiting for more changes
        notices.changed([5])
        notices.wake("prices")
        first = await asyncio.wait_for(heard.got.get(), timeout=5)  # long before the 30 s
        assert sorted([first, *await heard.everything()]) == [
            (sql.CHANGES_CHANNEL, "5,7"),
            (sql.NOTIFY_CHANNEL, "prices"),
        ]
    finally:
        await notices.close()


async def test_a_database_that_cannot_be_reached_drops_the_notices_and_says_so(db_url, conn):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    notices = Notices(pool)
    await pool.close()
    notices.wake("prices")
    await notices.flush()  # logged as notices.unsent, not raised
    heard = await Heard(conn).listen(sql.NOTIFY_CHANNEL)
    assert await heard.everything() == []


def test_change_payloads_split_at_the_limit_and_fall_back_to_the_wildcard():
    assert change_payloads([]) == []
    assert change_payloads([1, 22, 333], limit=6) == ["1,22", "333"]
    assert change_payloads([1, 22, 333], limit=8) == ["1,22,333"]
    big = list(range(100_000, 100_000 + 1000 * 16))  # 7-byte ids: 1,000 per 7,900 bytes
    payloads = change_payloads(big[: 900 * 16])
    assert len(payloads) <= sql.CHANGES_MAX_PAYLOADS
    assert all(len(p) <= sql.CHANGES_PAYLOAD_LIMIT for p in payloads)
    assert [int(i) for p in payloads for i in p.split(",")] == big[: 900 * 16]
    assert change_payloads(big * 2) == ["*"]


@pytest.mark.parametrize(("count", "payloads"), [(1, 1), (987, 1), (988, 2), (1975, 3)])
def test_every_id_is_in_exactly_one_payload(count, payloads):
    ids = list(range(1_000_000, 1_000_000 + count))  # 7 digits: 987 and their commas fit
    sent = change_payloads(ids)
    assert len(sent) == payloads
    assert [int(i) for p in sent for i in p.split(",")] == ids
    assert all(len(p) <= sql.CHANGES_PAYLOAD_LIMIT for p in sent)
