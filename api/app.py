"""The FastAPI application: `create_app(database_url)`; `conveyor api` serves it."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from api import dashboard, docs, errors, operators, research, schedules
from api.auth import Admin, Authenticator, Caller, Lapse, StreamCaller, bearer_credential
from api.errors import ERRORS, ApiError, ErrorBody
from api.headers import StandardHeaders
from api.keys import Principal, stream_secret
from api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from api.metrics import render as render_metrics
from api.payloads import authorized, validated_payload
from api.routing import GuardedRoute
from api.schemas import (
    NAME,
    ONE_START_TIME,
    TEXT,
    BatchOut,
    BulkRetryIn,
    BulkRetryOut,
    CancelOut,
    EventOut,
    HealthOut,
    JobOut,
    JobPage,
    KindOut,
    QueueOut,
    ReadyOut,
    RetryOut,
    StreamTokenOut,
    SubmitBatch,
    SubmitJob,
    Timestamp,
    WorkerOut,
    document_kinds,
)
from api.settings import ApiSettings, JwtSettings
from api.stream import (
    JobWatch,
    event_id,
    event_stream,
    snapshot,
    sse_response,
    stream_body,
    while_credential_holds,
)
from api.stream_tokens import issue as issue_stream_token
from api.tokens import TokenVerifier
from compute.specs import SPECS
from jobs.app import AppError, load_app
from jobs.logging import get_logger
from jobs.migrate import head_revision
from jobs.model import JobState, NewJob
from jobs.settings import DatabaseSettings
from jobs.store import Store
from jobs.wake import Waker

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
    )


def create_app(
    database_url: str,
    settings: ApiSettings | None = None,
    jwt: JwtSettings | None = None,
    kinds: Mapping[str, type[BaseModel]] | None = None,
) -> FastAPI:
    """The API for the built-in kinds and `kinds` (the payload models of the user's app)."""
    settings = settings or ApiSettings()
    jwt = jwt or JwtSettings()
    specs = dict(SPECS)
    for name in kinds or {}:
        if name in specs:
            raise AppError(f"kind {name!r} is one of Conveyor's own; rename it in the app")
    specs.update(kinds or {})
    tokens = TokenVerifier(jwt) if jwt.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = await Store.connect(database_url)
        app.state.stream_secret = (
            settings.stream_secret.encode()
            if settings.stream_secret
            else await stream_secret(app.state.store.pool)
        )
        app.state.auth = Authenticator(app.state.store.pool, tokens, settings.key_cache_s)
        app.state.watch = JobWatch(database_url)
        await app.state.watch.start()
        app.state.waker = Waker(database_url)
        await app.state.waker.start()
        try:
            yield
        finally:
            await app.state.waker.stop()
            await app.state.watch.stop()
            await app.state.store.close()

    app = FastAPI(
        title="Conveyor",
        version="0.1.0",
        description="Postgres-native background jobs: submit, follow, cancel, retry.",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs from this package, under a CSP
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.specs = specs
    app.router.route_class = GuardedRoute
    errors.install(app)
    app.include_router(schedules.router)
    app.include_router(research.router)
    app.include_router(operators.router(settings))
    app.include_router(dashboard.router)
    app.include_router(docs.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_kinds(schema, specs, "SubmitJob", ONE_START_TIME)
            document_kinds(schema, specs, "ScheduleIn")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(StandardHeaders)
    if settings.cors_origins:
        # Outermost, so a preflight is answered before anything else looks at it. No
        # credentials mode: the API authenticates with a bearer header, never a cookie.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Idempotent-Replayed", "Location", "Retry-After"],
            max_age=600,
        )

    @app.get("/health", tags=["ops"], response_model=HealthOut)
    async def health() -> HealthOut:
        """The process is alive."""
        return HealthOut(status="ok")

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        """Prometheus text: queue depth per state, oldest queued age, jobs finished by kind
        and outcome, the handler duration histogram, live workers. Unauthenticated unless
        CONVEYOR_METRICS_TOKEN is set; then `Authorization: Bearer <token>` (401 otherwise)."""
        if settings.metrics_token is not None:
            sent = bearer_credential(request) or ""
            if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
                raise ApiError(
                    401,
                    "unauthorized",
                    "/metrics needs `Authorization: Bearer <CONVEYOR_METRICS_TOKEN>`",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(await render_metrics(app.state.store), media_type=METRICS_CONTENT_TYPE)

    @app.get("/ready", tags=["ops"], response_model=ReadyOut, responses={503: {"model": ErrorBody}})
    async def ready() -> ReadyOut:
        """The database answers and its schema is at the code's migration head."""
        store: Store = app.state.store
        try:
            revision = await store.pool.fetchval("SELECT version_num FROM alembic_version")
        except Exception as exc:
            log.warning("api.not_ready", error_type=type(exc).__name__, error=str(exc))
            raise ApiError(
                503, "not_ready", "the database is unreachable; the log says why"
            ) from exc
        if revision != head_revision():
            raise ApiError(
                503,
                "not_ready",
                f"the database schema is at {revision}, the code needs {head_revision()}: "
                "run `conveyor migrate`",
            )
        return ReadyOut(status="ready", revision=str(revision))

    @app.post(
        "/v1/jobs",
        status_code=201,
        response_model=JobOut,
        responses={
            **ERRORS,
            200: {
                "model": JobOut,
                "description": "the idempotency key already named a job: that job, with "
                "`Idempotent-Replayed: true`",
                "headers": {"Idempotent-Replayed": {"schema": {"type": "string"}}},
            },
        },
        tags=["jobs"],
    )
    async def submit(
        body: SubmitJob,
        response: Response,
        who: Caller,
        idempotency_key: Annotated[
            str | None, Header(min_length=1, max_length=512, pattern=TEXT)
        ] = None,
    ) -> JobOut:
        """Validate and enqueue a job. A repeated idempotency key (body or
        `Idempotency-Key` header) answers 200 with the existing job."""
        store: Store = app.state.store
        job, duplicate = await store.submit(
            new_job(body, who, specs, idempotency_key), notify=False
        )
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        if duplicate:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        else:
            app.state.waker.wake(job.queue)
        return JobOut.of(job)

    @app.post(
        "/v1/jobs/batch", status_code=201, response_model=BatchOut, responses=ERRORS, tags=["jobs"]
    )
    async def submit_batch(body: SubmitBatch, who: Caller) -> BatchOut:
        """Up to 10,000 jobs in one statement; ids come back in input order, with which
        ones were already there (idempotency keys). Nothing is enqueued if one is invalid."""
        jobs = []
        for i, item in enumerate(body.jobs):
            try:
                jobs.append(new_job(item, who, specs))
            except ApiError as exc:
                raise ApiError(
                    exc.status,
                    exc.code,
                    f"jobs[{i}]: {exc.message}",
                    {"index": i, "problem": exc.details},
                ) from None
        result = await app.state.store.enqueue_many(jobs)
        return BatchOut(ids=[r.id for r in result], duplicates=[r.duplicate for r in result])

    @app.get("/v1/jobs/active", response_model=list[JobOut], responses=ERRORS, tags=["jobs"])
    async def active(
        who: Caller, recent_s: Annotated[float, Query(ge=0, le=86400)] = 300
    ) -> list[JobOut]:
        """The caller's queued and running jobs with their progress, plus those that finished
        in the last `recent_s` seconds (default 5 minutes), newest first, at most 500."""
        jobs = await app.state.store.active_jobs(owner=who.owner_filter, recent_s=recent_s)
        return [JobOut.of(j) for j in jobs]

    @app.post("/v1/jobs/retry", response_model=BulkRetryOut, responses=ERRORS, tags=["jobs"])
    async def retry_many(body: BulkRetryIn, who: Admin) -> BulkRetryOut:
        """Admin only: replay every dead (or cancelled) job the filter matches."""
        ids = await app.state.store.retry_many(
            body.filter.as_filter(),
            by=who.owner,
        )
        return BulkRetryOut(retried=len(ids), ids=sorted(ids))

    @app.get("/v1/jobs", response_model=JobPage, responses=ERRORS, tags=["jobs"])
    async def list_jobs(
        who: Caller,
        state: Annotated[list[JobState] | None, Query()] = None,
        kind: Annotated[list[Name] | None, Query(max_length=100)] = None,
        queue: Annotated[list[Name] | None, Query(max_length=100)] = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        finished_after: Timestamp | None = None,
        finished_before: Timestamp | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    ) -> JobPage:
        """The caller's jobs (an admin's: everyone's), newest first. `state`, `kind` and
        `queue` repeat (`kind=a&kind=b`): any of the values matches. Pass `next_cursor` back
        as `cursor` for the next page; it is null on the last one."""
        jobs = await app.state.store.list_jobs(
            owner=who.owner_filter,
            states=state or (),
            kinds=kind or (),
            queues=queue or (),
            created_after=created_after,
            created_before=created_before,
            finished_after=finished_after,
            finished_before=finished_before,
            before_id=int(cursor) if cursor else None,
            limit=limit + 1,
        )
        page = jobs[:limit]
        more = len(jobs) > limit
        return JobPage(
            jobs=[JobOut.of(j) for j in page], next_cursor=str(page[-1].id) if more else None
        )

    @app.get(
        "/v1/jobs/{job_id:job_id}/events",
        response_model=list[EventOut],
        responses=ERRORS,
        tags=["jobs"],
    )
    async def job_events(job_id: JobId, who: Caller) -> list[EventOut]:
        """What happened to the job beyond its row: retries, lost leases, cancels, progress."""
        await app.state.store.get(job_id, owner=who.owner_filter)  # 404 for others' jobs
        events = await app.state.store.events(job_id)
        return [EventOut(at=e.at, type=e.type, data=e.data) for e in events]

    @app.get(
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
        store: Store = app.state.store
        job = await store.get(job_id, owner=who.owner_filter)  # 404 before the stream starts
        if job.state.is_terminal and last_event_id == event_id(snapshot(job)):
            return Response(status_code=204)  # tells an EventSource to stop reconnecting
        body = stream_body(
            store,
            app.state.watch,
            job_id,
            who.owner_filter,
            last_event_id,
            poll_s=settings.stream_poll_s,
            keepalive_s=settings.stream_keepalive_s,
            retry_ms=settings.stream_retry_ms,
        )
        return event_stream(
            while_credential_holds(body, Lapse(request, who), settings.stream_recheck_s)
        )

    @app.post(
        "/v1/jobs/{job_id:job_id}/stream-token",
        response_model=StreamTokenOut,
        responses=ERRORS,
        tags=["jobs"],
    )
    async def job_stream_token(job_id: JobId, who: Caller) -> StreamTokenOut:
        """A token that opens this job's stream as `?token=` (for `EventSource`, which cannot
        send headers), valid for 60 s to open it; the stream then lasts as long as the
        credential that asked for it."""
        await app.state.store.get(job_id, owner=who.owner_filter)  # 404 for others' jobs
        issued = issue_stream_token(app.state.stream_secret, who, f"job:{job_id}")
        return StreamTokenOut.of(issued, f"/v1/jobs/{job_id}/stream")

    @app.post(
        "/v1/jobs/active/stream-token",
        response_model=StreamTokenOut,
        responses=ERRORS,
        tags=["jobs"],
    )
    async def active_stream_token(who: Caller) -> StreamTokenOut:
        """A token that opens `/v1/jobs/active/stream` as `?token=`, valid for 60 s to open
        it (add `recent_s` to the URL as you would otherwise)."""
        issued = issue_stream_token(app.state.stream_secret, who, "active")
        return StreamTokenOut.of(issued, "/v1/jobs/active/stream")

    @app.post(
        "/v1/jobs/{job_id:job_id}/retry", response_model=RetryOut, responses=ERRORS, tags=["jobs"]
    )
    async def retry(job_id: JobId, who: Caller) -> RetryOut:
        """A dead or cancelled job back to the queue with a fresh budget of attempts;
        409 for a job in any other state. The answer's state is the one the retry left it
        in (queued): a worker may have claimed it since."""
        await app.state.store.retry(job_id, owner=who.owner_filter, by=who.owner)
        return RetryOut(id=job_id, state=JobState.QUEUED)

    @app.get("/v1/queues", response_model=list[QueueOut], responses=ERRORS, tags=["ops"])
    async def queues(who: Caller) -> list[QueueOut]:
        """Per queue: queued and running now, finished in the last minute, and how long the
        oldest ready job has waited. A user's figures count only its own jobs."""
        rows = await app.state.store.queue_stats(owner=who.owner_filter)
        return [QueueOut(**r) for r in rows]

    @app.get("/v1/workers", response_model=list[WorkerOut], responses=ERRORS, tags=["ops"])
    async def workers(who: Admin) -> list[WorkerOut]:
        """Admin only (hosts and pids are the deployment's): live worker processes with
        their last heartbeat and how many jobs each runs."""
        return [WorkerOut(**r) for r in await app.state.store.live_workers()]

    @app.get("/v1/kinds", response_model=list[KindOut], responses=ERRORS, tags=["jobs"])
    async def list_kinds(who: Caller) -> list[KindOut]:
        """Every job kind with the JSON schema of its payload."""
        return [
            KindOut(kind=k, payload_schema=m.model_json_schema()) for k, m in sorted(specs.items())
        ]

    @app.get("/v1/jobs/{job_id:job_id}", response_model=JobOut, responses=ERRORS, tags=["jobs"])
    async def get_job(job_id: JobId, who: Caller) -> JobOut:
        """A job with its progress, result and one error entry per failed attempt. Another
        user's job answers 404, as if it did not exist."""
        return JobOut.of(await app.state.store.get(job_id, owner=who.owner_filter))

    @app.post(
        "/v1/jobs/{job_id:job_id}/cancel", response_model=CancelOut, responses=ERRORS, tags=["jobs"]
    )
    async def cancel(job_id: JobId, who: Caller) -> CancelOut:
        """Queued: cancelled now. Running: its worker is asked and stops it within two
        heartbeats. Finished: left as it is (the answer says its state)."""
        result = await app.state.store.cancel(job_id, owner=who.owner_filter, by=who.owner)
        return CancelOut(
            id=job_id,
            previous_state=result.previous,
            state=result.state,
            cancel_requested=result.requested,
        )

    return app


def from_environment() -> FastAPI:
    """The app as `conveyor api` serves it: everything from the environment."""
    url = DatabaseSettings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    settings = ApiSettings()
    kinds = load_app(settings.app).payloads if settings.app else None
    return create_app(url, settings, JwtSettings(), kinds)
