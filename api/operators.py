"""What an operator's screen needs beyond the job routes: who the caller is, finished jobs
per minute, how many jobs a bulk retry would replay, and one live stream of every active job.
Same rules as the rest of the API: a user sees only its own jobs, bulk retry is admin only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import Admin, Caller, Lapse, StreamCaller
from api.errors import ERRORS
from api.routing import GuardedRoute
from api.schemas import BulkRetryIn, MeOut, RetryCountOut, ThroughputOut, ThroughputPoint
from api.settings import ApiSettings
from api.stream import (
    KEEPALIVE,
    JobWatch,
    event_stream,
    quiet_for,
    snapshot,
    sse_response,
    while_credential_holds,
)
from jobs.model import Job
from jobs.store import Store

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


def router(settings: ApiSettings) -> APIRouter:
    r = APIRouter(route_class=GuardedRoute, responses=ERRORS)

    @r.get("/v1/me", response_model=MeOut, tags=["ops"])
    async def me(who: Caller) -> MeOut:
        """Who the caller is: the owner its jobs carry, how it signed in, its role, so a client
        can show or hide admin-only actions (the routes still decide: an admin-only route
        answers 403 to a user)."""
        return MeOut(
            owner=who.owner,
            source=who.source,
            name=who.name,
            issuer=who.issuer,
            role=who.role,
            is_admin=who.is_admin,
        )

    @r.get("/v1/throughput", response_model=ThroughputOut, tags=["ops"])
    async def throughput(
        request: Request, who: Caller, minutes: Annotated[int, Query(ge=1, le=60)] = 15
    ) -> ThroughputOut:
        """Finished jobs per minute over the last `minutes` minutes (default 15, the current
        minute last and still filling), by outcome. A user's figures count its own jobs."""
        store: Store = request.app.state.store
        rows = await store.throughput(owner=who.owner_filter, minutes=minutes)
        return ThroughputOut(minutes=minutes, points=[ThroughputPoint(**row) for row in rows])

    @r.post("/v1/jobs/retry/count", response_model=RetryCountOut, tags=["jobs"])
    async def retry_count(request: Request, body: BulkRetryIn, who: Admin) -> RetryCountOut:
        """Admin only: how many jobs `POST /v1/jobs/retry` with the same body would replay
        now, so a person can confirm a number before replaying."""
        store: Store = request.app.state.store
        count = await store.count_retryable(body.filter.as_filter())
        return RetryCountOut(matching=count)

    @r.get(
        "/v1/jobs/active/stream",
        response_class=StreamingResponse,
        responses={
            200: sse_response(
                "`jobs` (the whole list), then `job` (one job changed or appeared) and `gone` "
                "(one left the list); data is JSON"
            )
        },
        tags=["jobs"],
    )
    async def active_stream(
        request: Request,
        who: StreamCaller,
        recent_s: Annotated[float, Query(ge=0, le=86400)] = 300,
        token: Annotated[
            str | None,
            Query(max_length=2048, description="a stream token, instead of Authorization"),
        ] = None,
    ) -> StreamingResponse:
        """Server-Sent Events over what `GET /v1/jobs/active` lists: the caller's queued and
        running jobs with progress and those finished in the last `recent_s` seconds. One
        connection follows every active job, however many there are. It ends with an `end`
        event when its credential stops holding (a revoked key, an expired token)."""
        body = active_stream_body(
            request.app.state.store,
            request.app.state.watch,
            who.owner_filter,
            recent_s,
            poll_s=min(settings.stream_poll_s, ACTIVE_POLL_S),
            keepalive_s=settings.stream_keepalive_s,
            retry_ms=settings.stream_retry_ms,
        )
        return event_stream(
            while_credential_holds(body, Lapse(request, who), settings.stream_recheck_s)
        )

    return r
