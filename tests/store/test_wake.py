"""The Waker: notifications after the commit, one per queue per round trip."""

import asyncio

from jobs.sql import NOTIFY_CHANNEL
from jobs.wake import Waker


async def test_marked_queues_are_notified_once_each(db_url, conn):
    heard: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    waker = Waker(db_url)
    await waker.start()
    try:
        for queue in ("prices", "reports", "prices", "prices"):
            waker.wake(queue)
        got = {await asyncio.wait_for(heard.get(), 5) for _ in range(2)}
        assert got == {"prices", "reports"}
        await conn.execute("SELECT 1")  # delivers anything still pending
        assert heard.empty()  # the repeated marks were folded into one notification
        waker.wake("prices")  # and it keeps going
        assert await asyncio.wait_for(heard.get(), 5) == "prices"
    finally:
        await waker.stop()
