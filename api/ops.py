"""What operators and platforms ask beyond the jobs: liveness and readiness, Prometheus
metrics, queues, workers (admins only), kinds, who the caller is, finished jobs per minute,
the audit log (admins only)."""

from __future__ import annotations

import functools
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from api.auth import Admin, Caller, bearer_credential
from api.errors import ERRORS, ApiError, ErrorBody
from api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from api.metrics import render as render_metrics
from api.quotas import kind_refusal
from api.routing import GuardedRoute, app_settings, app_specs
from api.schemas import (
    NAME,
    AuditEventOut,
    AuditPage,
    HealthOut,
    KindControlOut,
    KindOut,
    KindPatch,
    MeOut,
    PageCursor,
    PageLimit,
    QueueControlOut,
    QueueOut,
    QueuePatch,
    QuotaIn,
    QuotaOut,
    ReadyOut,
    ShareIn,
    ShareOut,
    ThroughputOut,
    ThroughputPoint,
    WorkerDetailOut,
    WorkerOut,
    rate_limit_out,
)
from jobs.logging import get_logger
from jobs.metrics import success_rate
from jobs.migrate import head_revision
from jobs.model import RateLimit
from jobs.store import Store

log = get_logger(__name__)


router = APIRouter(route_class=GuardedRoute)


@router.get("/health", tags=["ops"], response_model=HealthOut)
async def health(
    request: Request,
) -> HealthOut:
    """The process is alive."""
    return HealthOut(status="ok")


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text: queue depth per state, oldest queued age, jobs finished by kind
    and outcome, the handler duration histogram, live workers. Unauthenticated unless
    CONVEYOR_METRICS_TOKEN is set; then `Authorization: Bearer <token>` (401 otherwise)."""
    token = app_settings(request).metrics_token
    if token is not None:
        sent = bearer_credential(request) or ""
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "/metrics needs `Authorization: Bearer <CONVEYOR_METRICS_TOKEN>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(await render_metrics(request.app.state.store), media_type=METRICS_CONTENT_TYPE)


@router.get("/ready", tags=["ops"], response_model=ReadyOut, responses={503: {"model": ErrorBody}})
async def ready(
    request: Request,
) -> ReadyOut:
    """The database answers and its schema is at the code's migration head."""
    store: Store = request.app.state.store
    try:
        revision = await store.schema_revision()
    except Exception as exc:
        log.warning("api.not_ready", error_type=type(exc).__name__, error=str(exc))
        raise ApiError(503, "not_ready", "the database is unreachable; the log says why") from exc
    if revision != head_revision():
        raise ApiError(
            503,
            "not_ready",
            f"the database schema is at {revision}, the code needs {head_revision()}: "
            "run `conveyor migrate`",
        )
    return ReadyOut(status="ready", revision=str(revision))


@router.get("/v1/queues", response_model=list[QueueOut], responses=ERRORS, tags=["ops"])
async def queues(request: Request, who: Caller) -> list[QueueOut]:
    """Per queue: queued and running now, finished in the last minute, and how long the
    oldest ready job has waited. A user's figures count only its own jobs."""
    rows = await request.app.state.store.queue_stats(owner=who.owner_filter)
    return [QueueOut(**r) for r in rows]


QueueName = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME)]


@router.patch("/v1/queues/{name}", response_model=QueueControlOut, responses=ERRORS, tags=["ops"])
async def control_queue(
    request: Request, name: QueueName, body: QueuePatch, who: Admin
) -> QueueControlOut:
    """Admin only: pause or resume a queue, or limit how many of its jobs run at once over
    every worker (`null` lifts it). Applies to every worker's next claim; a queue need not
    have jobs yet. A limit counts a dead worker's jobs until their leases expire and the
    reaper requeues them, so it is never exceeded."""
    given = body.model_fields_set
    row = await request.app.state.store.control_queue(
        name,
        by=who.owner,
        paused=body.paused if "paused" in given else None,
        **({"concurrency": body.concurrency} if "concurrency" in given else {}),
    )
    return QueueControlOut(**row)


Owner = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1024,
        pattern=r"^[^\s/]+$",
        description="an owner (key:NAME, jwt:ISSUER:SUB), or * for every user without its own",
    ),
]


@router.get("/v1/quotas", response_model=list[QuotaOut], responses=ERRORS, tags=["ops"])
async def quotas(request: Request, _admin: Admin) -> list[QuotaOut]:
    """Admin only: what users may submit; `*` first, then the owners with their own."""
    return [QuotaOut(**dict(r)) for r in await request.app.state.quotas.all()]


@router.put("/v1/quotas/{owner}", response_model=QuotaOut, responses=ERRORS, tags=["ops"])
async def put_quota(request: Request, owner: Owner, body: QuotaIn, who: Admin) -> QuotaOut:
    """Admin only: set an owner's quota (or `*`, every other user's); every API process
    applies it within a second. Admins are never limited."""
    row = await request.app.state.quotas.put(owner, body.model_dump(), who.owner)
    log.info("quota.set", owner=owner, by=who.owner)
    return QuotaOut(**dict(row))


@router.delete(
    "/v1/quotas/{owner}", status_code=204, response_class=Response, responses=ERRORS, tags=["ops"]
)
async def delete_quota(request: Request, owner: Owner, who: Admin) -> Response:
    """Admin only: the owner goes back to `*`'s quota (which itself can only be changed)."""
    if owner == "*":
        raise ApiError(409, "default_quota", "the default quota `*` stays: PUT it to change it")
    if not await request.app.state.quotas.delete(owner):
        raise ApiError(404, "quota_not_found", f"{owner} has no quota of its own")
    log.info("quota.deleted", owner=owner, by=who.owner)
    return Response(status_code=204)


@router.get("/v1/workers", response_model=list[WorkerOut], responses=ERRORS, tags=["ops"])
async def workers(request: Request, who: Admin) -> list[WorkerOut]:
    """Admin only (hosts and pids are the deployment's): live worker processes with their
    version, last heartbeat and its age, how many jobs each holds, has finished, and the
    kinds each runs."""
    rows = await request.app.state.store.live_workers()
    return [WorkerOut(**{**r, "kinds": [k["kind"] for k in r["kinds"]]}) for r in rows]


WorkerId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        pattern=NAME,
        description="a worker's id, as GET /v1/workers lists them (HOST:PID:SUFFIX)",
    ),
]


@router.get(
    "/v1/workers/{worker_id}", response_model=WorkerDetailOut, responses=ERRORS, tags=["ops"]
)
async def worker(request: Request, worker_id: WorkerId, who: Admin) -> WorkerDetailOut:
    """Admin only: one live worker, with the kinds it runs (their default timeout, whether
    CPU-bound) and the jobs it holds now. 404 once it has stopped (or was pruned after
    missing its heartbeats)."""
    row = await request.app.state.store.worker(worker_id)
    if row is None:
        raise ApiError(
            404,
            "worker_not_found",
            f"no live worker {worker_id!r}: it has stopped, or never ran; GET /v1/workers "
            "lists the live ones",
        )
    return WorkerDetailOut(**row)


@router.get("/v1/kinds", response_model=list[KindOut], responses=ERRORS, tags=["jobs"])
async def list_kinds(request: Request, who: Caller) -> list[KindOut]:
    """Every job kind with the JSON schema of its payload, its limits if it has any, what
    the live workers running it say of it (default timeout, CPU-bound, how many run it), its
    jobs finished over the last 24 hours with their success rate (for admins: the figures
    span every owner), and whether the caller may submit it."""
    store: Store = request.app.state.store
    limits = {c["kind"]: c for c in await store.kind_controls()}
    catalogue = await store.kind_catalogue()
    quota = None if who.is_admin else await request.app.state.quotas.quota(who.owner)
    kinds = []
    for k, m in sorted(app_specs(request).items()):
        seen = catalogue.get(k, {})
        succeeded, dead = seen.get("succeeded_24h", 0), seen.get("dead_24h", 0)
        refusal = kind_refusal(quota, k)
        kinds.append(
            KindOut(
                kind=k,
                payload_schema=payload_schema(m),
                concurrency=limits.get(k, {}).get("concurrency"),
                owner_concurrency=limits.get(k, {}).get("owner_concurrency"),
                rate_limit=rate_limit_out(limits.get(k, {})),
                timeout_s=seen.get("timeout_s"),
                cpu_bound=seen.get("cpu_bound"),
                workers=seen.get("workers", 0),
                **(
                    {
                        "finished_24h": succeeded + dead + seen.get("cancelled_24h", 0),
                        "succeeded_24h": succeeded,
                        "dead_24h": dead,
                        "success_rate": success_rate(succeeded, dead),
                    }
                    if who.is_admin  # they span every owner's jobs
                    else {}
                ),
                may_submit=refusal is None,
                submit_refusal=refusal,
            )
        )
    return kinds


@functools.cache
def payload_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A kind's payload JSON Schema, made once per model (it cost about a millisecond)."""
    return model.model_json_schema()


KindName = Annotated[str, Path(min_length=1, max_length=128, pattern=NAME)]


@router.patch("/v1/kinds/{kind}", response_model=KindControlOut, responses=ERRORS, tags=["ops"])
async def control_kind(
    request: Request, kind: KindName, body: KindPatch, who: Admin
) -> KindControlOut:
    """Admin only: limit how many of a kind's jobs run at once over every worker and host,
    how many of one owner's, and how many start in a window (`rate_limit`, for the kind or
    per owner or payload field); `null` lifts any of them. Every worker claims by the new
    limits within a second. A limit counts a dead worker's jobs until their leases expire
    and the reaper requeues them, so it is never exceeded; a job over a rate waits, queued,
    and starts when the window allows."""
    if kind not in app_specs(request):
        raise ApiError(404, "kind_not_found", f"no kind {kind!r}: GET /v1/kinds lists them")
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set}
    if "rate_limit" in changes:
        rate = changes.pop("rate_limit")
        changes["rate"] = rate and RateLimit(rate.allowed, rate.period_s, rate.partition)
    row = await request.app.state.store.control_kind(kind, by=who.owner, **changes)
    fields = ("kind", "concurrency", "owner_concurrency", "updated_at", "updated_by")
    return KindControlOut(**{k: row[k] for k in fields}, rate_limit=rate_limit_out(row))


@router.get("/v1/me", response_model=MeOut, tags=["ops"])
async def me(request: Request, who: Caller) -> MeOut:
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


@router.get("/v1/throughput", response_model=ThroughputOut, tags=["ops"])
async def throughput(
    request: Request, who: Caller, minutes: Annotated[int, Query(ge=1, le=60)] = 15
) -> ThroughputOut:
    """Finished jobs per minute over the last `minutes` minutes (default 15, the current
    minute last and still filling), by outcome. A user's figures count its own jobs."""
    store: Store = request.app.state.store
    rows = await store.throughput(owner=who.owner_filter, minutes=minutes)
    return ThroughputOut(minutes=minutes, points=[ThroughputPoint(**row) for row in rows])


@router.get("/v1/shares", response_model=list[ShareOut], responses=ERRORS, tags=["ops"])
async def shares(request: Request, _admin: Admin) -> list[ShareOut]:
    """Admin only: the owners with a fair-share weight of their own (every other has 1)."""
    return [ShareOut(**r) for r in await request.app.state.store.shares()]


@router.put("/v1/shares/{owner}", response_model=ShareOut, responses=ERRORS, tags=["ops"])
async def put_share(request: Request, owner: Owner, body: ShareIn, who: Admin) -> ShareOut:
    """Admin only: while several owners have jobs waiting in a queue, each starts jobs in
    proportion to its weight. Applies to the owner's jobs that become ready from now on."""
    if owner == "*":
        raise ApiError(422, "invalid_owner", "a weight is an owner's: every other owner has 1")
    return ShareOut(**await request.app.state.store.set_share(owner, body.weight, by=who.owner))


@router.delete(
    "/v1/shares/{owner}", status_code=204, response_class=Response, responses=ERRORS, tags=["ops"]
)
async def delete_share(request: Request, owner: Owner, who: Admin) -> Response:
    """Admin only: the owner goes back to weight 1."""
    if not await request.app.state.store.clear_share(owner, by=who.owner):
        raise ApiError(404, "share_not_found", f"{owner} has no weight of its own")
    return Response(status_code=204)


@router.get("/v1/audit", response_model=AuditPage, responses=ERRORS, tags=["ops"])
async def audit(
    request: Request,
    who: Admin,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> AuditPage:
    """Admin only: operators' destructive actions (jobs deleted, keys created and revoked),
    newest first, with who did them."""
    store: Store = request.app.state.store
    rows = await store.audit_events(before_id=int(cursor) if cursor else None, limit=limit + 1)
    page = rows[:limit]
    return AuditPage(
        events=[AuditEventOut(**r) for r in page],
        next_cursor=str(page[-1]["id"]) if len(rows) > limit else None,
    )
