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
        # A thousand marks before the Waker's next round trip: one notification per queue.
        # Sent one statement per mark instead, each in its own transaction, Postgres would
        # deliver every one (it folds duplicates only within a transaction).
        for _ in range(1000):
            waker.wake("prices")
        waker.wake("reports")
        got = [await asyncio.wait_for(heard.get(), 5) for _ in range(2)]
        await asyncio.sleep(0.5)
        await conn.execute("SELECT 1")  # delivers anything still pending
        while not heard.empty():
            got.append(heard.get_nowait())
        assert sorted(got) == ["prices", "reports"]
        waker.wake("prices")  # and it keeps going
        assert await asyncio.wait_for(heard.get(), 5) == "prices"
    finally:
        await waker.stop()
