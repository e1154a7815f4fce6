"""job_stats on real Postgres: tallies add up, and workers flushing at once neither deadlock
nor lose counts."""

import asyncio

from jobs.metrics import Tally


def tally_of(*records):
    t = Tally()
    for r in records:
        t.record(*r)
    return t.take()


async def test_flushes_add_up_per_key(store):
    await store.add_stats(tally_of(("q", "k", "succeeded", 0.2), ("q", "k", "dead", 1.0)))
    await store.add_stats(tally_of(("q", "k", "succeeded", 30.0), ("q", "k", "dead", None)))
    stats = await store.job_stats()
    ok, dead = stats[("q", "k", "succeeded")], stats[("q", "k", "dead")]
    assert (ok.finished, ok.duration_sum_s, sum(ok.buckets)) == (2, 30.2, 2)
    assert (dead.finished, dead.duration_sum_s, sum(dead.buckets)) == (2, 1.0, 1)
    assert await store.add_stats({}) is None  # nothing to add, no statement


async def test_concurrent_flushes_over_the_same_keys_lose_nothing(store):
    keys = [("q", f"k{i}", "succeeded") for i in range(20)]

    async def flush(order):
        for _ in range(25):
            await store.add_stats(tally_of(*((*k, 0.01) for k in order)))

    await asyncio.gather(*(flush(keys if i % 2 else keys[::-1]) for i in range(6)))
    stats = await store.job_stats()
    assert {stats[k].finished for k in keys} == {6 * 25}
