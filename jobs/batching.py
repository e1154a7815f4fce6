"""Concurrent calls gathered into batches: how single enqueues share a statement and a flush.

Each autocommit insert waits for its own WAL flush. On a disk whose flush takes a few
milliseconds, a client with ten connections gets at most ten inserts per flush, however
many callers are waiting for one: measured here on 2026-12-03, one worker's enqueues held
about 690 of 1,000 jobs/s offered, the enqueues waiting on `WALWrite` and `WALSync`. A
`Batcher` runs a call at once while fewer than `in_flight` batches are running (an idle
system pays no wait), and gathers the calls made meanwhile into the next batch, which then
costs one statement and one flush however large it is. So the batches grow with the load and
the cost of a flush is shared by as many callers as arrived during the previous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """`await batcher.submit(item)` answers with `run`'s result for `item`.

    `run(items)` answers for each item in order with its result, or with the exception that
    item's caller is to raise (one bad item need not fail its neighbours). A caller that is
    cancelled stops waiting: its item is left out if its batch has not begun, and is still
    run if it has (as a statement already sent would be).
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        in_flight: int = 2,
        max_size: int = 1000,
    ) -> None:
        if in_flight < 1 or max_size < 1:
            raise ValueError("in_flight and max_size must be at least 1")
        self._run = run
        self._in_flight = in_flight
        self._max_size = max_size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """How many batches are being run now."""
        return len(self._running)

    async def submit(self, item: Item) -> Result:
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        self._start()
        return await done

    async def close(self) -> None:
        """Wait for the batches already running (and any they leave waiting) to end."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start(self) -> None:
        while len(self._running) < self._in_flight:
            # a caller that stopped waiting before its batch began is left out of it
            self._waiting = [(item, done) for item, done in self._waiting if not done.done()]
            if not self._waiting:
                return
            batch = self._waiting[: self._max_size]
            del self._waiting[: self._max_size]
            task = asyncio.get_running_loop().create_task(self._one(batch), name="batch")
            self._running.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _one(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        batch = [(item, done) for item, done in batch if not done.done()]
        if not batch:
            return  # every caller stopped waiting before it began
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
        except Exception as exc:  # every caller in the batch hears it
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:  # cancelled (a loop shutting down): so are its callers
            for _, done in batch:
                done.cancel()
            raise
        for (_, done), result in zip(batch, results, strict=True):
            if done.done():
                continue  # its caller stopped waiting
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)
