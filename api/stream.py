"""Server-Sent Events for one job: `GET /v1/jobs/{id}/stream`.

How a change reaches a browser:
1. The statement that changes a job (claim, finish, progress, cancel, retry) sends one
   notification on `CHANGES_CHANNEL` naming the ids it changed (`jobs.sql`).
2. `JobWatch`, one LISTEN connection per API process, wakes the streams following those ids.
3. Each woken stream re-reads its job and sends what differs from what it last sent.

A stream also re-reads its job every `stream_poll_s` without being woken, so a notification
lost while the listener reconnects (a Postgres restart) delays an event, never loses it.

Events are snapshots of the job, not a log: a stream sends the job as it is now whenever
that differs from what it sent last. Progress reports that arrive faster than a stream reads
are folded into the latest one, and a state held for less than a read (a job that runs in a
millisecond) can be folded into the next; the terminal state is always sent. Each event's
`id` is a digest of its snapshot, so any API process can resume a stream: a reconnect with
`Last-Event-ID` sends nothing until the job differs from what the client already shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from fastapi.responses import StreamingResponse

from api.auth import Lapse
from jobs.db import TRANSIENT_ERRORS, Connection, asyncpg_dsn, connect_listener
from jobs.errors import JobNotFound
from jobs.logging import get_logger
from jobs.model import Job
from jobs.sql import CHANGES_CHANNEL
from jobs.store import Store

log = get_logger(__name__)

Snapshot = dict[str, Any]


def snapshot(job: Job) -> Snapshot:
    """What a stream shows of a job."""
    return {
        "job_id": job.id,
        "state": job.state.value,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "cancel_requested": job.cancel_requested_at is not None,
        "result": job.result,
        "last_error": job.errors[-1] if job.errors else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def event_id(snap: Snapshot) -> str:
    """A digest of the snapshot: equal ids mean the client already shows this job as it is."""
    canonical = json.dumps(snap, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


_PROGRESS_FIELDS = ("progress", "progress_message")


def event_type(previous: Snapshot | None, current: Snapshot) -> str:
    """`progress` when only the progress moved since the last event, else `state`."""
    if previous is None:
        return "state"
    changed = {k for k in current if current[k] != previous.get(k)}
    return "progress" if changed and changed <= set(_PROGRESS_FIELDS) else "state"


def sse(event: str, id_: str, data: Snapshot) -> bytes:
    body = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\nid: {id_}\ndata: {body}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"


def end_event(code: str, message: str) -> bytes:
    """The last event of a stream the server ends for a reason other than the job's end."""
    body = json.dumps({"code": code, "message": message}, separators=(",", ":"))
    return f"event: end\ndata: {body}\n\n".encode()


async def while_credential_holds(
    body: AsyncIterator[bytes], lapse: Lapse, recheck_s: float
) -> AsyncIterator[bytes]:
    """`body`, until the credential that opened the stream stops holding: checked every
    `recheck_s` and at a token's expiry, whatever the stream is doing. Then an `end` event
    saying why, and the stream closes; a reconnect with the same credential gets a 401."""
    chunks = aiter(body)
    pending: asyncio.Future[bytes] | None = None
    check_at = time.monotonic() + recheck_s
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(chunks))
            wait = check_at - time.monotonic()
            expiry = lapse.seconds_to_expiry()
            if expiry is not None:
                wait = min(wait, expiry)
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, wait))
            if done:
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield chunk
                continue
            reason = await lapse.reason()
            if reason is not None:
                log.info("stream.credential_lapsed", owner=lapse.who.owner, reason=reason)
                yield end_event("credential_lapsed", reason)
                return
            check_at = time.monotonic() + recheck_s
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class JobWatch:
    """One LISTEN connection per API process; streams follow job ids through it."""

    def __init__(self, database_url: str | None, *, health_check_s: float = 30.0) -> None:
        """`database_url` None: behind a transaction pooler with no direct URL, nothing
        listens; streams re-read at their poll interval and revoked keys leave the cache
        within its interval."""
        self._dsn = asyncpg_dsn(database_url) if database_url else None
        self._health_check_s = health_check_s
        self._followers: dict[int, set[asyncio.Event]] = {}
        self._everything: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None
        self._channels: dict[str, Callable[[str], None]] = {}
        self.listening = asyncio.Event()

    def also(self, channel: str, hear: Callable[[str], None]) -> None:
        """Pass another channel's payloads to `hear` through the same connection (before
        `start`), and "*" on each (re)connection: what was sent while nobody listened."""
        self._channels[channel] = hear

    async def start(self) -> None:
        if self._dsn is None:
            log.warning(
                "stream.listen_off",
                reason="DB_POOLER=transaction without DATABASE_DIRECT_URL: streams poll",
            )
            return
        self._task = asyncio.create_task(self._run(), name="job-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @contextmanager
    def follow(self, job_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever the job may have changed; the follower clears it."""
        woken = asyncio.Event()
        self._followers.setdefault(job_id, set()).add(woken)
        try:
            yield woken
        finally:
            followers = self._followers.get(job_id)
            if followers is not None:
                followers.discard(woken)
                if not followers:
                    del self._followers[job_id]

    @contextmanager
    def follow_all(self) -> Iterator[asyncio.Event]:
        """An event set whenever any job may have changed (the active-jobs stream)."""
        woken = asyncio.Event()
        self._everything.add(woken)
        try:
            yield woken
        finally:
            self._everything.discard(woken)

    def _wake(self, payload: str) -> None:
        for woken in self._everything:
            woken.set()
        if payload == "*":
            self._wake_all()
            return
        for part in payload.split(","):
            for woken in self._followers.get(int(part), ()):
                woken.set()

    def _wake_all(self) -> None:
        for woken in self._everything:
            woken.set()
        for followers in self._followers.values():
            for woken in followers:
                woken.set()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._wake(payload)

    async def _run(self) -> None:
        assert self._dsn is not None
        delay = 0.5
        while True:
            conn: Connection | None = None
            try:
                conn = await connect_listener(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANGES_CHANNEL, self._notified)
                for channel, hear in self._channels.items():
                    await conn.add_listener(channel, _passing(hear))
                    hear("*")
                self.listening.set()
                self._wake_all()  # whatever changed while nobody listened
                log.info("stream.listener_connected")
                delay = 0.5
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._health_check_s)
                    except TimeoutError:
                        await conn.execute("SELECT 1", timeout=10)
            except TRANSIENT_ERRORS as exc:
                log.warning("stream.listener_lost", error=str(exc), retry_in_s=delay)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _passing(hear: Callable[[str], None]) -> Callable[[object, int, str, str], None]:
    def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        hear(payload)

    return notified


def event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    """An SSE response: never cached, never buffered by a proxy (nginx honours the header)."""
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse_response(description: str) -> dict[str, Any]:
    """The OpenAPI entry of a 200 that is a Server-Sent Events stream."""
    return {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": f"{description}; last, an `end` event (`code`, `message`) if the "
        "credential that opened the stream stops holding",
    }


async def quiet_for(
    woken: asyncio.Event, idle_since: float, poll_s: float, keepalive_s: float
) -> bool:
    """Wait for a wake-up, the next poll, or the keep-alive, whichever comes first; True when
    the stream has been silent for `keepalive_s` and should send a keep-alive comment."""
    until_keepalive = idle_since + keepalive_s - time.monotonic()
    with suppress(TimeoutError):
        await asyncio.wait_for(woken.wait(), max(0.0, min(poll_s, until_keepalive)))
    return time.monotonic() - idle_since >= keepalive_s


async def stream_body(
    store: Store,
    watch: JobWatch,
    job_id: int,
    owner: str | None,
    last_event_id: str | None,
    *,
    poll_s: float,
    keepalive_s: float,
    retry_ms: int,
) -> AsyncIterator[bytes]:
    """The stream's body: `retry:`, then an event whenever the job differs from the last one
    sent (or from `last_event_id`), keep-alive comments when idle; ends after a terminal state
    or when the job is gone (pruned)."""
    with watch.follow(job_id) as woken:
        yield f"retry: {retry_ms}\n\n".encode()
        sent_id, sent = last_event_id, None
        idle_since = time.monotonic()
        while True:
            woken.clear()  # before the read, so a change during it wakes the next wait
            try:
                job = await store.get(job_id, owner=owner)
            except JobNotFound:
                return
            current = snapshot(job)
            current_id = event_id(current)
            if current_id != sent_id:
                yield sse(event_type(sent, current), current_id, current)
                sent_id, sent = current_id, current
                idle_since = time.monotonic()
            if job.state.is_terminal:
                return
            if await quiet_for(woken, idle_since, poll_s, keepalive_s):
                yield KEEPALIVE
                idle_since = time.monotonic()


ACTIVE_POLL_S = 2.0
"""The active-jobs stream re-reads at least this often: a job enqueued without a worker to
claim it sends no change notification, and should still appear within seconds."""
ACTIVE_MIN_INTERVAL_S = 0.25
"""...and at most this often, however busy the queue: one open dashboard costs at most four
reads a second, not one per notification."""


def active_item(job: Job) -> dict[str, Any]:
    """A job as the active-jobs stream shows it: the per-job stream's snapshot plus what a
    list row needs."""
    return {
        **snapshot(job),
        "kind": job.kind,
        "queue": job.queue,
        "owner": job.owner,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
    }


def _event(event: str, data: Any) -> bytes:
    body = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {body}\n\n".encode()


async def active_stream_body(
    store: Store,
    watch: JobWatch,
    owner: str | None,
    recent_s: float,
    *,
    poll_s: float,
    keepalive_s: float,
    retry_ms: int,
) -> AsyncIterator[bytes]:
    """`jobs` with the whole list first (newest first), then `job` for each job that changed
    or appeared and `gone` for each that left the list (finished longer than `recent_s` ago).
    Events carry no id: a reconnect starts with the whole list again, which is one read."""
    with watch.follow_all() as woken:
        yield f"retry: {retry_ms}\n\n".encode()
        sent: dict[int, dict[str, Any]] | None = None
        idle_since = time.monotonic()
        while True:
            woken.clear()  # before the read, so a change during it wakes the next wait
            read_at = time.monotonic()
            jobs = await store.active_jobs(owner=owner, recent_s=recent_s)
            current = {j.id: active_item(j) for j in jobs}
            if sent is None:
                yield _event("jobs", {"jobs": list(current.values())})
                idle_since = time.monotonic()
            else:
                changed = [item for i, item in current.items() if sent.get(i) != item]
                gone = [i for i in sent if i not in current]
                for item in reversed(changed):  # oldest first, so newer rows end up on top
                    yield _event("job", item)
                for job_id in gone:
                    yield _event("gone", {"job_id": job_id})
                if changed or gone:
                    idle_since = time.monotonic()
            sent = current
            if await quiet_for(woken, idle_since, poll_s, keepalive_s):
                yield KEEPALIVE
                idle_since = time.monotonic()
            pause = read_at + ACTIVE_MIN_INTERVAL_S - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
