"""A pool of child processes for CPU-bound handlers, one job per child at a time.

Why not concurrent.futures.ProcessPoolExecutor: a job must be stoppable. On a cancel or a
timeout the child is told (a flag in shared memory its handler checks between chunks), and a
child that does not stop within the grace period is killed and replaced — which the standard
pool cannot do to one task. Children are started with `spawn`, so they share no state (or
event loop) with the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing as mp
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from jobs.logging import get_logger
from jobs.transitions import Cancelled, Outcome, Success, Timeout
from worker.outcomes import CHILD_DIED

log = get_logger(__name__)
_MP = mp.get_context("spawn")


def _child_main(conn: Connection, cancel_flag: Any, app: str | None) -> None:
    # Imported here: the child builds its own registry from the same code, and imports a
    # kind's module when it first runs a job of that kind.
    from worker import outcomes
    from worker.context import ChildContext
    from worker.registry import registry_for

    # The parent decides when a job stops: a terminal's Ctrl-C or a service manager's
    # group-wide SIGTERM must not turn running jobs into failures. And a child must not
    # outlive its parent (kill -9 of the worker): ask Linux to kill it then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()

    registry = registry_for(app)
    while True:
        try:
            task = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if task is None:
            return
        job_id, kind_name, attempt, payload = task
        kind = registry.get(kind_name)
        ctx = ChildContext(job_id, kind_name, attempt, conn, cancel_flag)
        try:
            assert kind is not None, f"unknown kind {kind_name}"
            if not kind.has_load:
                result = kind.handler(ctx, kind.payload.model_validate(payload))
            else:  # (payload, what the kind's load read for it)
                result = kind.handler(ctx, kind.payload.model_validate(payload[0]), payload[1])
            outcome: Outcome = Success(result)
        except BaseException as exc:
            outcome = outcomes.raised(exc)
        try:
            conn.send(("done", outcome))
        except Exception as exc:  # e.g. a result that does not pickle
            conn.send(("done", outcomes.raised(exc)))


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class _Slot:
    process: Any
    conn: Connection
    cancel_flag: Any
    inbox: asyncio.Queue[tuple[Any, ...]]
    reader: threading.Thread


class ProcessPool:
    def __init__(
        self,
        size: int,
        cancel_grace_s: float = 2.0,
        app: str | None = None,
    ) -> None:
        """Each child builds the built-in kinds and those of `app` (the worker's `--app`).
        Children are started when a job needs one and none is idle (or all at once by
        `start`)."""
        self.size = size
        self.cancel_grace_s = cancel_grace_s
        self.app = app
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._slots: list[_Slot] = []
        self._spawning = 0

    async def start(self) -> None:
        """Start every child now, rather than as jobs come to need them."""
        while len(self._slots) < self.size:
            await self._add_child()

    async def _add_child(self) -> None:
        self._spawning += 1
        try:
            slot = await asyncio.to_thread(self._spawn, asyncio.get_running_loop())
        finally:
            self._spawning -= 1
        self._slots.append(slot)
        self._idle.put_nowait(slot)

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> _Slot:
        parent, child = _MP.Pipe()
        flag = _MP.Value("b", 0)
        process = _MP.Process(target=_child_main, args=(child, flag, self.app), daemon=True)
        process.start()
        child.close()
        inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def read() -> None:
            while True:
                try:
                    msg: tuple[Any, ...] = parent.recv()
                except Exception:  # EOF, a torn pipe, an unpicklable reply: the child is lost
                    msg = ("died",)
                try:
                    loop.call_soon_threadsafe(inbox.put_nowait, msg)
                except RuntimeError:  # the loop is closed: the worker is exiting
                    return
                if msg[0] == "died":
                    return

        reader = threading.Thread(target=read, name="pool-reader", daemon=True)
        reader.start()
        return _Slot(process, parent, flag, inbox, reader)

    async def run(
        self,
        job_id: int,
        kind: str,
        attempt: int,
        payload: Any,
        *,
        on_progress: Any,
        cancel: asyncio.Event,
        timeout_s: float | None,
    ) -> Outcome:
        slot = await self._acquire(cancel, (job_id, kind, attempt, payload))
        if slot is None:
            return Cancelled("cancel requested")  # before a child was free to start it
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        cancel_wait = asyncio.ensure_future(cancel.wait())
        get: asyncio.Future[tuple[Any, ...]] | None = None
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                get = asyncio.ensure_future(slot.inbox.get())
                done, _ = await asyncio.wait(
                    {get, cancel_wait}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if get in done:
                    msg = get.result()
                    if msg[0] == "progress":
                        on_progress(msg[1], msg[2])
                        continue
                    if msg[0] == "died":
                        await self._replace(slot)
                        return CHILD_DIED
                    self._idle.put_nowait(slot)
                    outcome: Outcome = msg[1]
                    return outcome
                get.cancel()
                stopped: Outcome = (
                    Cancelled("cancel requested") if cancel.is_set() else Timeout(timeout_s or 0)
                )
                await self._stop(slot)
                return stopped
        except asyncio.CancelledError:
            if get is not None:
                get.cancel()  # or it would swallow the child's reply that _stop waits for
            await asyncio.shield(self._stop(slot))
            raise
        finally:
            cancel_wait.cancel()

    async def _acquire(self, cancel: asyncio.Event, task: tuple[Any, ...]) -> _Slot | None:
        """An idle child with the job sent to it; None if a cancel came first. A child that
        died while idle is replaced and the job sent to its successor."""
        while True:
            if self._idle.empty() and len(self._slots) + self._spawning < self.size:
                await self._add_child()
            get = asyncio.ensure_future(self._idle.get())
            cancel_wait = asyncio.ensure_future(cancel.wait())
            done, _ = await asyncio.wait({get, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
            cancel_wait.cancel()
            if get not in done:
                get.cancel()
                return None
            slot = get.result()
            slot.cancel_flag.value = 0
            try:
                slot.conn.send(task)
            except OSError:
                await self._replace(slot)
                continue
            return slot

    async def _stop(self, slot: _Slot) -> None:
        """Tell the child to stop; kill and replace it if it does not within the grace."""
        slot.cancel_flag.value = 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cancel_grace_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(slot.inbox.get(), remaining)
            except TimeoutError:
                break
            if msg[0] == "died":
                break
            if msg[0] != "progress":
                self._idle.put_nowait(slot)
                return
        await self._replace(slot)

    async def _replace(self, slot: _Slot) -> None:
        if slot not in self._slots:
            return  # already replaced (a cancelled stop retried by its shield)
        log.warning("pool.child_replaced", pid=slot.process.pid)
        with contextlib.suppress(Exception):
            slot.process.kill()
        self._slots.remove(slot)
        self._spawning += 1  # the successor counts from now: `_acquire` must not add one too
        try:
            await asyncio.to_thread(slot.process.join, 5)
            with contextlib.suppress(Exception):
                slot.conn.close()
            fresh = await asyncio.to_thread(self._spawn, asyncio.get_running_loop())
        finally:
            self._spawning -= 1
        self._slots.append(fresh)
        self._idle.put_nowait(fresh)

    @property
    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self._slots]

    def kill_all(self) -> None:
        """For an immediate exit: no child may go on computing a job that is run elsewhere."""
        for slot in self._slots:
            with contextlib.suppress(Exception):
                slot.process.kill()

    async def close(self) -> None:
        for slot in self._slots:
            with contextlib.suppress(Exception):
                slot.conn.send(None)
        for slot in self._slots:
            await asyncio.to_thread(slot.process.join, 2)
            if slot.process.is_alive():
                slot.process.kill()
        self._slots.clear()
