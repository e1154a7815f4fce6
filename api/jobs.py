"""Every `/v1/jobs` route: submit (one or a batch), list, read, follow (per job and every
active job, as Server-Sent Events, with stream tokens for browsers), cancel and retry (one,
or in bulk for admins). A user sees only its own jobs; another's answers 404."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from api.auth import Admin, Caller, Lapse, StreamCaller
from api.errors import ERRORS, ApiError
from api.keys import Principal
from api.payloads import authorized, validated_payload
from api.routing import GuardedRoute, app_settings, app_specs
from api.schemas import (
    NAME,
    TEXT,
    BatchOut,
    BulkIn,
    BulkOut,
    BulkRetryIn,
    BulkRetryOut,
    BulkSkipped,
    CancelOut,
    EventOut,
    JobCountsOut,
    JobOut,
    JobPage,
    PageCursor,
    PageLimit,
    RetryCountOut,
    RetryOut,
    StateCount,
    StreamTokenOut,
    SubmitBatch,
    SubmitJob,
    Timestamp,
)
from api.stream import (
    ACTIVE_POLL_S,
    active_stream_body,
    event_id,
    event_stream,
    snapshot,
    sse_response,
    stream_body,
    while_credential_holds,
)
from api.stream_tokens import issue as issue_stream_token
from jobs.errors import JobNotFound, ParentFailed
from jobs.logging import get_logger
from jobs.model import REPLAYABLE_STATES, BrowseState, JobState, NewJob
from jobs.store import COUNT_CAP, JobFilter, RetryFilter, Store

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the job's id")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NAME)]

log = get_logger(__name__)


class JobIdConvertor(Convertor[int]):
    """`{job_id:job_id}`: at most 19 digits, as many as a bigint has. A longer number matches
    no route (404); Starlette's `int` convertor matched any number of digits and failed
    converting one past Python's 4,300-digit limit, a 500 before authentication. Within 19
    digits, `JobId` refuses what a bigint cannot hold (422)."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("job_id", JobIdConvertor())


def new_job(
    body: SubmitJob,
    who: Principal,
    specs: Mapping[str, type[BaseModel]],
    header_key: str | None = None,
) -> NewJob:
    """Validate a submission against its kind's payload model; 422 names what is wrong."""
    payload = validated_payload(body.kind, body.payload, specs)
    authorized(body.kind, payload, who)
    return NewJob(
        kind=body.kind,
        payload=payload,
        queue=body.queue,
        priority=body.priority,
        run_at=body.run_at,
        run_after_s=body.delay_s,  # after the database's clock, as every other time
        max_attempts=body.max_attempts,
        timeout_s=body.timeout_s,
        idempotency_key=body.idempotency_key or header_key,
        owner=who.owner,
        unique_key=body.unique_key,
        debounce_s=body.debounce_s,
    )


router = APIRouter(route_class=GuardedRoute)


@router.post(
    "/v1/jobs",
    status_code=201,
    response_model=JobOut,
    responses={
        **ERRORS,
        200: {
            "model": JobOut,
            "description": "nothing added: the job the idempotency key already named"
            " (`Idempotent-Replayed: true`), the active job holding the unique key"
            " (`Unique-Existing: true`), or the queued one a debounce replaced (`Debounced: true`)",
            "headers": {
                name: {"schema": {"type": "string"}}
                for name in ("Idempotent-Replayed", "Unique-Existing", "Debounced")
            },
        },
    },
    tags=["jobs"],
)
async def submit(
    request: Request,
    body: SubmitJob,
    response: Response,
    who: Caller,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=512, pattern=TEXT)
    ] = None,
) -> JobOut:
    """Validate and enqueue a job. A repeated idempotency key (body or
    `Idempotency-Key` header) answers 200 with the existing job."""
    store: Store = request.app.state.store
    wanted = new_job(body, who, app_specs(request), idempotency_key)
    await request.app.state.quotas.admit(who, [wanted])
    if wanted.unique_key is not None:
        job, outcome = await store.submit_unique(wanted)
    elif body.depends_on is not None:
        try:
            job, duplicate = await store.submit_after(
                wanted, body.depends_on, visible_to=who.owner_filter
            )
        except JobNotFound as exc:
            raise ApiError(
                422,
                "invalid_request",
                f"depends_on: there is no job {exc.job_id}" + ("" if who.is_admin else " of yours"),
            ) from None
        except ParentFailed as exc:
            raise ApiError(409, "parent_failed", f"depends_on: {exc}") from None
        outcome = "existing" if duplicate else "new"
    else:
        job, duplicate = await store.submit(wanted)
        outcome = "existing" if duplicate else "new"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if outcome == "new":  # the store wakes the workers after the commit
        return JobOut.of(job)
    response.status_code = 200
    if outcome == "debounced":
        response.headers["Debounced"] = "true"
    elif wanted.idempotency_key is not None and job.idempotency_key == wanted.idempotency_key:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        response.headers["Unique-Existing"] = "true"
    return JobOut.of(job)


@router.post(
    "/v1/jobs/batch", status_code=201, response_model=BatchOut, responses=ERRORS, tags=["jobs"]
)
async def submit_batch(request: Request, body: SubmitBatch, who: Caller) -> BatchOut:
    """Up to 10,000 jobs in one statement; ids come back in input order, with which
    ones were already there (idempotency keys). Nothing is enqueued if one is invalid."""
    jobs = []
    for i, item in enumerate(body.jobs):
        for field in ("unique_key", "depends_on"):
            if getattr(item, field) is not None:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"jobs[{i}]: {field}: submit jobs with a {field.replace('_', ' ')} one at a"
                    " time (POST /v1/jobs)",
                )
        try:
            jobs.append(new_job(item, who, app_specs(request)))
        except ApiError as exc:
            raise ApiError(
                exc.status,
                exc.code,
                f"jobs[{i}]: {exc.message}",
                {"index": i, "problem": exc.details},
            ) from None
    await request.app.state.quotas.admit(who, jobs)
    result = await request.app.state.store.enqueue_many(jobs)
    return BatchOut(ids=[r.id for r in result], duplicates=[r.duplicate for r in result])


@router.get("/v1/jobs/active", response_model=list[JobOut], responses=ERRORS, tags=["jobs"])
async def active(
    request: Request, who: Caller, recent_s: Annotated[float, Query(ge=0, le=86400)] = 300
) -> list[JobOut]:
    """The caller's queued and running jobs with their progress, plus those that finished
    in the last `recent_s` seconds (default 5 minutes), newest first, at most 500."""
    jobs = await request.app.state.store.active_jobs(owner=who.owner_filter, recent_s=recent_s)
    return [JobOut.of(j) for j in jobs]


@router.post("/v1/jobs/retry", response_model=BulkRetryOut, responses=ERRORS, tags=["jobs"])
async def retry_many(request: Request, body: BulkRetryIn, who: Admin) -> BulkRetryOut:
    """Admin only: replay every dead (or cancelled) job the filter matches."""
    ids = await request.app.state.store.retry_many(
        body.filter.as_filter(),
        by=who.owner,
    )
    return BulkRetryOut(retried=len(ids), ids=sorted(ids))


def job_filter(
    who: Caller,
    state: Annotated[
        list[BrowseState] | None,
        Query(description="any of these; `scheduled` and `retrying` are parts of `queued`"),
    ] = None,
    kind: Annotated[list[Name] | None, Query(max_length=100)] = None,
    queue: Annotated[list[Name] | None, Query(max_length=100)] = None,
    owner: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=1024,
            pattern=TEXT,
            description="admins: one owner's jobs (`key:NAME`, `jwt:ISSUER:SUB`, `system`)",
        ),
    ] = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    finished_after: Timestamp | None = None,
    finished_before: Timestamp | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=TEXT,
            description="a job id (`123` or `#123`), or text equal to an idempotency key or "
            "found in the payload's JSON (case-insensitive)",
        ),
    ] = None,
) -> JobFilter:
    """The listing's filters, scoped to the caller: a user who names another owner is
    refused, not shown an empty page that looks like an answer."""
    if owner is not None and who.owner_filter is not None and owner != who.owner_filter:
        raise ApiError(
            403, "forbidden", "only admins list other owners' jobs: leave `owner` out for yours"
        )
    return JobFilter(
        owner=who.owner_filter or owner,
        states=state or (),
        kinds=kind or (),
        queues=queue or (),
        created_after=created_after,
        created_before=created_before,
        finished_after=finished_after,
        finished_before=finished_before,
        search=q,
    )


Filtered = Annotated[JobFilter, Depends(job_filter)]


@router.get("/v1/jobs", response_model=JobPage, responses=ERRORS, tags=["jobs"])
async def list_jobs(
    request: Request,
    where: Filtered,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    brief: Annotated[
        bool,
        Query(
            description="true: `payload` and `result` null, `errors` only the last one "
            "without its traceback; a list's rows in a fraction of the bytes"
        ),
    ] = False,
) -> JobPage:
    """The caller's jobs (an admin's: everyone's), newest first. `state`, `kind` and
    `queue` repeat (`kind=a&kind=b`): any of the values matches. Pass `next_cursor` back
    as `cursor` for the next page; it is null on the last one. A text search (`q` that is
    not an id) reads 20,000 ids per call, newest first, and a listing by `kind` or `queue`
    100,000, so that each call costs the same however big the table is: such a page may
    hold fewer than `limit` jobs, even none, and still have a `next_cursor` to go on from."""
    store: Store = request.app.state.store
    listing = await store.list_jobs(
        where, before_id=int(cursor) if cursor else None, limit=limit, brief=brief
    )
    return JobPage(
        jobs=[JobOut.of(j) for j in listing.jobs],
        next_cursor=None if listing.next_before is None else str(listing.next_before),
    )


@router.get("/v1/jobs/counts", response_model=JobCountsOut, responses=ERRORS, tags=["jobs"])
async def count_jobs(request: Request, where: Filtered) -> JobCountsOut:
    """How many of the caller's jobs (an admin's: everyone's) are in each state, with the
    same filters as `GET /v1/jobs` (`state` and `q` aside). Each count stops at 10,000,
    with `more` true beyond it, so it stays cheap on any size of table."""
    store: Store = request.app.state.store
    counts = await store.count_jobs(where)
    return JobCountsOut(
        counts=[
            StateCount(state=st, count=min(n, COUNT_CAP), more=n > COUNT_CAP)
            for st, n in counts.items()
        ]
    )


@router.post("/v1/jobs/bulk", response_model=BulkOut, responses=ERRORS, tags=["jobs"])
async def bulk(request: Request, body: BulkIn, who: Caller) -> BulkOut:
    """One action over a selection of the caller's jobs (an admin's: anyone's), each job
    taken as it is now: `cancel` cancels queued and waiting ones and asks running ones to
    stop; `retry` replays dead and cancelled ones with a fresh budget of attempts; `delete`
    (admins only) removes finished ones with their events, and records who deleted which in
    the audit log (`GET /v1/audit`). The answer lists what was done and, for every other id,
    why not."""
    store: Store = request.app.state.store
    ids = sorted(set(body.ids))
    scope = who.owner_filter
    if body.action == "cancel":
        results = await store.cancel_many(ids, owner=scope, by=who.owner)
        done = [r.job_id for r in results if not r.previous.is_terminal]
        found = {r.job_id: r.state for r in results if r.previous.is_terminal}
        reason = "already finished"
    elif body.action == "retry":
        done = await store.retry_many(
            RetryFilter(states=REPLAYABLE_STATES, owner=scope, ids=ids), by=who.owner
        )
        found = await store.states_of([i for i in ids if i not in set(done)], owner=scope)
        reason = "only dead or cancelled jobs are retried"
    else:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "only admins delete jobs; cancel yours instead")
        done = await store.delete_jobs(ids, by=who.owner)
        found = await store.states_of([i for i in ids if i not in set(done)], owner=None)
        reason = "only finished jobs are deleted: cancel it first"
    done_set = set(done)
    skipped = [
        BulkSkipped(id=i, state=found.get(i), reason=reason if i in found else "no such job")
        for i in ids
        if i not in done_set
    ]
    log.info("jobs.bulk", action=body.action, by=who.owner, done=len(done), skipped=len(skipped))
    return BulkOut(action=body.action, done=sorted(done), skipped=skipped)


@router.get(
    "/v1/jobs/{job_id:job_id}/events",
    response_model=list[EventOut],
    responses=ERRORS,
    tags=["jobs"],
)
async def job_events(request: Request, job_id: JobId, who: Caller) -> list[EventOut]:
    """What happened to the job beyond its row: retries, lost leases, cancels, progress."""
    await request.app.state.store.get(job_id, owner=who.owner_filter)  # 404 for others' jobs
    events = await request.app.state.store.events(job_id)
    return [EventOut(at=e.at, type=e.type, data=e.data) for e in events]


@router.get(
    "/v1/jobs/{job_id:job_id}/stream",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: sse_response(
            "`state` and `progress` events, each with an `id:`; the data is the job's "
            "state, attempt, progress, result and last error as JSON"
        ),
        204: {"description": "the job is finished and the client already has its end"},
    },
    tags=["jobs"],
)
async def stream(
    request: Request,
    job_id: JobId,
    who: StreamCaller,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    token: Annotated[
        str | None,
        Query(max_length=2048, description="a stream token, instead of Authorization"),
    ] = None,
    resume: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=64,
            description="as the Last-Event-ID header, for a new EventSource",
        ),
    ] = None,
) -> Response:
    """Server-Sent Events: the job at once, then each state change and progress report
    as it happens; keep-alive comments while idle; ends after a terminal state. Send
    `Last-Event-ID` (or `?last_event_id=`) to resume: nothing is repeated that the client
    already has. A browser's `EventSource` authenticates with `?token=` from
    `POST /v1/jobs/{id}/stream-token`. A stream whose credential stops holding (a revoked
    key, an expired token) ends with an `end` event saying why."""
    last_event_id = last_event_id or resume
    store: Store = request.app.state.store
    job = await store.get(job_id, owner=who.owner_filter)  # 404 before the stream starts
    if job.state.is_terminal and last_event_id == event_id(snapshot(job)):
        return Response(status_code=204)  # tells an EventSource to stop reconnecting
    body = stream_body(
        store,
        request.app.state.watch,
        job_id,
        who.owner_filter,
        last_event_id,
        poll_s=app_settings(request).stream_poll_s,
        keepalive_s=app_settings(request).stream_keepalive_s,
        retry_ms=app_settings(request).stream_retry_ms,
    )
    return event_stream(
        while_credential_holds(body, Lapse(request, who), app_settings(request).stream_recheck_s)
    )


@router.post(
    "/v1/jobs/{job_id:job_id}/stream-token",
    response_model=StreamTokenOut,
    responses=ERRORS,
    tags=["jobs"],
)
async def job_stream_token(request: Request, job_id: JobId, who: Caller) -> StreamTokenOut:
    """A token that opens this job's stream as `?token=` (for `EventSource`, which cannot
    send headers), valid for 60 s to open it; the stream then lasts as long as the
    credential that asked for it."""
    await request.app.state.store.get(job_id, owner=who.owner_filter)  # 404 for others' jobs
    issued = issue_stream_token(request.app.state.stream_secret, who, f"job:{job_id}")
    return StreamTokenOut.of(issued, f"/v1/jobs/{job_id}/stream")


@router.post(
    "/v1/jobs/active/stream-token",
    response_model=StreamTokenOut,
    responses=ERRORS,
    tags=["jobs"],
)
async def active_stream_token(request: Request, who: Caller) -> StreamTokenOut:
    """A token that opens `/v1/jobs/active/stream` as `?token=`, valid for 60 s to open
    it (add `recent_s` to the URL as you would otherwise)."""
    issued = issue_stream_token(request.app.state.stream_secret, who, "active")
    return StreamTokenOut.of(issued, "/v1/jobs/active/stream")


@router.post(
    "/v1/jobs/{job_id:job_id}/retry", response_model=RetryOut, responses=ERRORS, tags=["jobs"]
)
async def retry(request: Request, job_id: JobId, who: Caller) -> RetryOut:
    """A dead or cancelled job back to the queue with a fresh budget of attempts;
    409 for a job in any other state. The answer's state is the one the retry left it
    in (queued): a worker may have claimed it since."""
    await request.app.state.store.retry(job_id, owner=who.owner_filter, by=who.owner)
    return RetryOut(id=job_id, state=JobState.QUEUED)


@router.get("/v1/jobs/{job_id:job_id}", response_model=JobOut, responses=ERRORS, tags=["jobs"])
async def get_job(request: Request, job_id: JobId, who: Caller) -> JobOut:
    """A job with its progress, result and one error entry per failed attempt. Another
    user's job answers 404, as if it did not exist."""
    return JobOut.of(await request.app.state.store.get(job_id, owner=who.owner_filter))


@router.post(
    "/v1/jobs/{job_id:job_id}/cancel", response_model=CancelOut, responses=ERRORS, tags=["jobs"]
)
async def cancel(request: Request, job_id: JobId, who: Caller) -> CancelOut:
    """Queued: cancelled now. Running: its worker is asked and stops it within two
    heartbeats. Finished: left as it is (the answer says its state)."""
    result = await request.app.state.store.cancel(job_id, owner=who.owner_filter, by=who.owner)
    return CancelOut(
        id=job_id,
        previous_state=result.previous,
        state=result.state,
        cancel_requested=result.requested,
    )


@router.post("/v1/jobs/retry/count", response_model=RetryCountOut, tags=["jobs"])
async def retry_count(request: Request, body: BulkRetryIn, who: Admin) -> RetryCountOut:
    """Admin only: how many jobs `POST /v1/jobs/retry` with the same body would replay
    now, so a person can confirm a number before replaying."""
    store: Store = request.app.state.store
    count = await store.count_retryable(body.filter.as_filter())
    return RetryCountOut(matching=count)


@router.get(
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
        poll_s=min(app_settings(request).stream_poll_s, ACTIVE_POLL_S),
        keepalive_s=app_settings(request).stream_keepalive_s,
        retry_ms=app_settings(request).stream_retry_ms,
    )
    return event_stream(
        while_credential_holds(body, Lapse(request, who), app_settings(request).stream_recheck_s)
    )
