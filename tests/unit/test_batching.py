"""Batcher: a lone call runs at once; calls made while batches run go together."""

import asyncio

import pytest

from jobs.batching import Batcher


async def settle() -> None:
    """Let the tasks made so far run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


class Recorder:
    """A run that answers each item doubled, and holds each batch until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        await self.release.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


async def test_a_lone_call_runs_at_once_and_calls_made_meanwhile_go_together():
    run = Recorder()
    batcher = Batcher(run, in_flight=2)
    first = asyncio.create_task(batcher.submit(1))
    second = asyncio.create_task(batcher.submit(2))
    await settle()
    assert run.batches == [[1], [2]]  # each started at once: two batches may run
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(3, 8)]
    await settle()
    assert batcher.running == 2 and len(run.batches) == 2  # the rest wait for a free turn
    run.release.set()
    assert await asyncio.gather(first, second, *rest) == [2, 4, 6, 8, 10, 12, 14]
    assert run.batches == [[1], [2], [3, 4, 5, 6, 7]]
    await batcher.close()
    assert batcher.running == 0


async def test_batches_are_at_most_max_size():
    run = Recorder()
    batcher = Batcher(run, in_flight=1, max_size=2)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
    await settle()
    run.release.set()
    assert await asyncio.gather(*calls) == [0, 2, 4, 6, 8]
    assert run.batches == [[0], [1, 2], [3, 4]]


async def test_an_item_answered_with_an_exception_fails_only_its_own_caller():
    run = Recorder()
    run.release.set()
    batcher = Batcher(run, in_flight=1)
    blocker = asyncio.create_task(batcher.submit(0))
    good = asyncio.create_task(batcher.submit(5))
    bad = asyncio.create_task(batcher.submit(-1))
    assert await blocker == 0
    assert await good == 10
    with pytest.raises(ValueError, match="bad -1"):
        await bad
    assert run.batches == [[0], [5, -1]]


async def test_a_run_that_raises_fails_every_caller_of_its_batch_and_the_next_batch_runs():
    calls: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        calls.append(items)
        if "boom" in items:
            raise ConnectionError("database went away")
        return items

    batcher: Batcher[str, str] = Batcher(run, in_flight=1)
    a = asyncio.create_task(batcher.submit("boom"))
    b = asyncio.create_task(batcher.submit("x"))
    with pytest.raises(ConnectionError):
        await a
    assert await b == "x"
    assert calls == [["boom"], ["x"]]


async def test_a_run_with_the_wrong_number_of_answers_is_an_error_not_a_hang():
    async def run(items: list[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="a batch of 1 got 0 results"):
        await Batcher(run).submit(1)


async def test_a_caller_that_stops_waiting_before_its_batch_begins_is_left_out():
    run = Recorder()
    batcher = Batcher(run, in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    gone = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(3))
    await settle()
    gone.cancel()
    run.release.set()
    assert (await first, await kept) == (2, 6)
    assert gone.cancelled()
    assert run.batches == [[1], [3]]


def test_in_flight_and_max_size_must_be_positive():
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        Batcher(run, in_flight=0)
    with pytest.raises(ValueError):
        Batcher(run, max_size=0)
