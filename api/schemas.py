"""Request and response bodies of the REST API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema, models_json_schema

from compute.specs import JsonInput
from jobs.model import BrowseState, Job, JobState
from jobs.store import RetryFilter
from stores.keys import NAME_MAX as KEY_NAME_MAX
from stores.keys import NAME_PATTERN as KEY_NAME
from stores.keys import name_problem

NAME = r"^[A-Za-z0-9_.:-]+$"
"""Kinds and queues."""
TEXT = r"^[^\x00]+$"
"""Free text: anything but NUL, which Postgres text cannot hold."""
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_8601_only(value: object) -> object:
    """Pydantic reads a bare number as Unix time; the API documents ISO 8601 only."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("give a date-time in ISO 8601 with a timezone, e.g. 2026-11-22T21:30:00Z")
    return value


YEARS = range(1000, 9999)
"""Years a request's date-time may name: four digits, and not 9999, where a zone offset
could move it past the last date Python and asyncpg hold (and year 1 before the first)."""
YEAR_PATTERN = r"^(1[0-9]{3}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-"


def _in_range(value: datetime) -> datetime:
    if value.year not in YEARS:
        raise ValueError(
            f"give a date-time with a year from {YEARS[0]} to {YEARS[-1]}, not {value.year}"
        )
    return value.astimezone(UTC)


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_8601_only),
    AfterValidator(_in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN}),
]
"""An ISO 8601 date-time with a timezone and a year from 1000 to 9998, in a request; read
as UTC."""


class SubmitJob(JsonInput):
    kind: str = Field(min_length=1, max_length=128, pattern=NAME)
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", min_length=1, max_length=128, pattern=NAME)
    priority: int = Field(default=0, ge=-32768, le=32767)
    run_at: Timestamp | None = None
    delay_s: float | None = Field(default=None, ge=0, le=366 * 86400)
    max_attempts: int = Field(default=5, ge=1, le=100)
    timeout_s: int | None = Field(default=None, ge=1, le=7 * 86400)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=512, pattern=TEXT)
    unique_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=TEXT,
        description="while a job of yours with this key is queued or running, none is added:"
        " the answer is that job (200, `Unique-Existing: true`); once it is done the key is free",
    )
    debounce_s: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="with unique_key: a queued job with the key takes this payload and starts"
        " this long from now (200, `Debounced: true`); a new job starts this long from now too",
    )

    depends_on: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="ids of your jobs (an admin: anyone's) that must all succeed first; the job"
        " waits in state `waiting`, and is cancelled if one of them ends dead or cancelled",
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> SubmitJob:
        if self.depends_on is not None and self.unique_key is not None:
            raise ValueError("depends_on: give it or a unique_key, not both")
        if self.run_at is not None and self.delay_s is not None:
            raise ValueError("give run_at or delay_s, not both")
        if self.debounce_s is not None:
            if self.unique_key is None:
                raise ValueError("debounce_s: give a unique_key too; it names what is debounced")
            if self.run_at is not None or self.delay_s is not None:
                raise ValueError("debounce_s sets the start: give neither run_at nor delay_s")
        return self


class JobOut(BaseModel):
    id: int
    kind: str
    queue: str
    state: JobState
    payload: Any
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    timeout_s: int | None
    progress: int
    progress_message: str | None
    result: Any
    errors: list[dict[str, Any]]
    idempotency_key: str | None
    unique_key: str | None = Field(description="deduplicates while the job is queued or running")
    owner: str = Field(
        description="who submitted it: `key:NAME` (an API key), `jwt:ISSUER:SUB` (a signed-in "
        "user) or `system` (the scheduler, operators' scripts)"
    )
    cancel_requested_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate({f: getattr(job, f) for f in cls.model_fields})


class SubmitBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[SubmitJob] = Field(min_length=1, max_length=10_000)


class BatchOut(BaseModel):
    ids: list[int]
    duplicates: list[bool]


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


PageLimit = Annotated[int, Query(ge=1, le=500, description="at most this many (1 to 500)")]
PageCursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,18}$", description="a page's `next_cursor`")
]
"""A keyset-paginated listing's parameters, the same on every listing."""


class StateCount(BaseModel):
    state: BrowseState
    count: int = Field(description="jobs in this state that the filter matches, up to the cap")
    more: bool = Field(description="true: more than `count` (counting stopped at the cap)")


class JobCountsOut(BaseModel):
    counts: list[StateCount] = Field(
        description="every state, in the browser's order; `scheduled` and `retrying` are "
        "parts of `queued`, counted in it too"
    )


BULK_MAX = 1000


class BulkIn(BaseModel):
    """One action over a selection of jobs."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["cancel", "retry", "delete"] = Field(
        description="cancel (queued now, running asked to stop), retry (dead or cancelled), "
        "delete (finished jobs only; admin only, recorded in the audit log)"
    )
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        min_length=1, max_length=BULK_MAX, description=f"at most {BULK_MAX} job ids"
    )


class BulkSkipped(BaseModel):
    id: int
    state: JobState | None = Field(description="its state; null: no such job of yours")
    reason: str


class BulkOut(BaseModel):
    action: str
    done: list[int] = Field(description="the ids the action applied to")
    skipped: list[BulkSkipped] = Field(description="the others, each with why")


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="the owner name of who did it (`key:NAME`, `jwt:...`)")
    action: str
    data: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None


class EventOut(BaseModel):
    at: datetime
    type: str
    data: Any


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    revision: str = Field(description="the database's migration revision")


class RateLimitIn(JsonInput):
    """At most `allowed` jobs start in any `period_s` seconds, over every worker and host."""

    allowed: int = Field(ge=1, le=1_000_000, description="starts per window")
    period_s: float = Field(
        ge=0.001, le=604_800, description="the window, in seconds (at most a week)"
    )
    partition: str | None = Field(
        default=None,
        pattern=r"^(owner|payload\.[A-Za-z0-9_]{1,64})$",
        description="null: one window for the whole kind; `owner`: one per owner; "
        "`payload.<field>`: one per value of a top-level payload field (e.g. "
        "`payload.provider`; jobs without the field share one)",
    )


class RateLimitOut(BaseModel):
    allowed: int
    period_s: float
    partition: str | None


def rate_limit_out(row: Mapping[str, Any]) -> RateLimitOut | None:
    """A kind_control row's rate, if it has one."""
    if row.get("rate_allowed") is None:
        return None
    return RateLimitOut(
        allowed=row["rate_allowed"], period_s=row["rate_period_s"], partition=row["rate_partition"]
    )


class KindOut(BaseModel):
    kind: str
    payload_schema: dict[str, Any]
    concurrency: int | None = Field(
        default=None, description="at most this many run at once over every worker; null: any"
    )
    owner_concurrency: int | None = Field(
        default=None, description="at most this many of one owner's run at once; null: any"
    )
    rate_limit: RateLimitOut | None = Field(
        default=None, description="at most this many start in a window; null: no rate limit"
    )
    timeout_s: float | None = Field(
        default=None,
        description="the default timeout a live worker runs the kind with (a job's own "
        "timeout_s wins); null: none, or no live worker runs the kind",
    )
    cpu_bound: bool | None = Field(
        default=None,
        description="runs in a worker's process pool (a plain function), not on its event "
        "loop; null: no live worker runs the kind",
    )
    workers: int = Field(
        default=0,
        description="live workers that run the kind; 0: none does, so its jobs wait",
    )
    finished_24h: int | None = Field(
        default=None,
        description="its jobs that succeeded, ended dead or were cancelled in the last 24 "
        "hours, every owner's; null for a user (the figures span every owner)",
    )
    succeeded_24h: int | None = None
    dead_24h: int | None = None
    success_rate: float | None = Field(
        default=None,
        description="succeeded / (succeeded + dead) over the last 24 hours, cancelled jobs "
        "left out; null: none of them finished, or the caller is a user",
    )
    may_submit: bool = Field(
        default=True, description="whether the caller may submit jobs of this kind"
    )
    submit_refusal: str | None = Field(
        default=None, description="why the caller may not submit it (null when it may)"
    )


class RetryFilterIn(BaseModel):
    """Which finished jobs to replay; unset fields do not filter."""

    model_config = ConfigDict(extra="forbid")

    states: list[Literal["dead", "cancelled"]] = Field(
        default=["dead"], min_length=1, description="only finished jobs that did not succeed"
    )
    kind: str | None = Field(default=None, max_length=128, pattern=NAME)
    queue: str | None = Field(default=None, max_length=128, pattern=NAME)
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern=TEXT,
        description="`key:NAME`, `jwt:ISSUER:SUB` or `system`",
    )
    finished_after: Timestamp | None = None
    finished_before: Timestamp | None = None

    def as_filter(self) -> RetryFilter:
        """The store's filter: what bulk retry replays and its count counts, the same."""
        return RetryFilter(
            states=frozenset(JobState(s) for s in self.states),
            kind=self.kind,
            queue=self.queue,
            owner=self.owner,
            finished_after=self.finished_after,
            finished_before=self.finished_before,
        )


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: RetryFilterIn = Field(default_factory=RetryFilterIn)


class BulkRetryOut(BaseModel):
    retried: int
    ids: list[int]


class RetryCountOut(BaseModel):
    matching: int = Field(description="jobs the same filter would replay now")


class StreamTokenOut(BaseModel):
    token: str = Field(description="pass as `?token=` to the stream; never logged by Conveyor")
    expires_at: datetime = Field(description="open the stream before this")
    url: str = Field(description="the stream's path with the token, ready for EventSource")

    @classmethod
    def of(cls, issued: Any, path: str) -> StreamTokenOut:
        return cls(
            token=issued.token,
            expires_at=datetime.fromtimestamp(issued.expires_at, UTC),
            url=f"{path}?token={issued.token}",
        )


class MeOut(BaseModel):
    owner: str = Field(
        description="the principal: the owner of the jobs this caller submits, "
        "`key:NAME` for an API key, `jwt:ISSUER:SUB` for a signed-in user"
    )
    source: Literal["key", "jwt"] = Field(description="how the caller authenticated")
    name: str = Field(description="the key's name, or the token's `sub`")
    issuer: str | None = Field(description="the token's `iss` (JWTs only)")
    role: str
    is_admin: bool


class ThroughputPoint(BaseModel):
    minute: datetime = Field(description="the minute's start")
    succeeded: int
    dead: int
    cancelled: int


class ThroughputOut(BaseModel):
    minutes: int
    points: list[ThroughputPoint] = Field(description="one per minute, oldest first")


class RetryOut(BaseModel):
    id: int
    state: JobState


class QueueOut(BaseModel):
    queue: str
    queued: int
    running: int
    succeeded_last_minute: int
    dead_last_minute: int
    cancelled_last_minute: int
    oldest_queued_age_s: float | None
    paused: bool = Field(description="nothing is claimed from it until it is resumed")
    concurrency: int | None = Field(description="at most this many run at once (null: no limit)")


def _queue_patch_schema(schema: dict[str, Any]) -> None:
    """`paused` is not nullable; an empty patch is refused."""
    _not_nullable({"properties": {"paused": schema["properties"]["paused"]}})
    schema["minProperties"] = 1


class QueuePatch(JsonInput):
    """Only the fields sent change. `concurrency: null` lifts the limit; `paused` takes true
    or false, never null."""

    model_config = ConfigDict(json_schema_extra=_queue_patch_schema)

    paused: bool | None = Field(
        default=None,
        description="true: nothing is claimed from the queue (running jobs finish, new jobs"
        " are still accepted); false: resume",
    )
    concurrency: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="at most this many of the queue's jobs run at once, over every worker and"
        " host; null: no limit",
    )

    @model_validator(mode="after")
    def _something(self) -> QueuePatch:
        if not self.model_fields_set:
            raise ValueError("send paused, concurrency, or both")
        return self


class QueueControlOut(BaseModel):
    queue: str
    paused: bool
    concurrency: int | None
    updated_at: datetime
    updated_by: str


QueueName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NAME)]


def _kind_patch_schema(schema: dict[str, Any]) -> None:
    schema["minProperties"] = 1


class KindPatch(JsonInput):
    """Only the fields sent change; null lifts a limit."""

    model_config = ConfigDict(json_schema_extra=_kind_patch_schema)

    concurrency: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="at most this many of the kind's jobs run at once, over every worker and"
        " host; null: no limit",
    )
    owner_concurrency: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="at most this many of one owner's jobs of the kind run at once; null: no limit",
    )
    rate_limit: RateLimitIn | None = Field(
        default=None,
        description="at most `allowed` of the kind's jobs start in any `period_s` seconds, "
        "over every worker; a job over it waits, queued (no attempt used); null: no rate limit",
    )

    @model_validator(mode="after")
    def _something(self) -> KindPatch:
        if not self.model_fields_set:
            raise ValueError("send concurrency, owner_concurrency, rate_limit, or several")
        return self


class KindControlOut(BaseModel):
    kind: str
    concurrency: int | None
    owner_concurrency: int | None
    rate_limit: RateLimitOut | None
    updated_at: datetime
    updated_by: str


class QuotaIn(JsonInput):
    """What an owner (or `*`: every user without a quota of its own) may submit."""

    priority_min: int = Field(ge=-32768, le=32767)
    priority_max: int = Field(ge=-32768, le=32767)
    queues: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NAME)]] | None
    ) = Field(max_length=100, description="the queues it may submit to; null: any")
    max_queued: int | None = Field(
        ge=0, le=100_000_000, description="its queued jobs at most; null: no cap"
    )
    demo_kinds: bool = Field(description="whether it may submit the demo.* kinds")

    @model_validator(mode="after")
    def _ordered(self) -> QuotaIn:
        if self.priority_min > self.priority_max:
            raise ValueError(
                f"priority_min: {self.priority_min} is above priority_max {self.priority_max}"
            )
        return self


class QuotaOut(BaseModel):
    owner: str
    priority_min: int
    priority_max: int
    queues: list[str] | None
    max_queued: int | None
    demo_kinds: bool
    updated_at: datetime
    updated_by: str


class ShareIn(JsonInput):
    """An owner's weight in fair share: while several owners have jobs waiting in a queue,
    each starts jobs in proportion to its weight (1 for an owner without one)."""

    weight: float = Field(ge=0.01, le=100, description="0.01 to 100; 2 takes twice the turns of 1")


class ShareOut(BaseModel):
    owner: str
    weight: float
    updated_at: datetime
    updated_by: str


class _Worker(BaseModel):
    id: str
    host: str
    pid: int
    version: str = Field(description="the Conveyor version the worker runs")
    queues: list[str]
    concurrency: int = Field(description="jobs it runs at once (its slots)")
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float = Field(description="seconds since its last heartbeat")
    running: int = Field(description="jobs it holds now (running or in its buffer)")
    jobs_done: int = Field(
        description="jobs it finished (succeeded, dead, cancelled), as of its last heartbeat"
    )


class WorkerOut(_Worker):
    kinds: list[str] = Field(description="the kinds it runs")


class WorkerKindOut(BaseModel):
    kind: str
    timeout_s: float | None = Field(description="the kind's default timeout; null: none")
    cpu_bound: bool = Field(description="runs in the worker's process pool")


class WorkerJobOut(BaseModel):
    id: int
    kind: str
    queue: str
    owner: str
    attempt: int
    progress: int
    progress_message: str | None
    started_at: datetime | None


class WorkerDetailOut(_Worker):
    kinds: list[WorkerKindOut] = Field(description="the kinds it runs, with their defaults")
    jobs: list[WorkerJobOut] = Field(
        description="the jobs it holds now, oldest start first (a claimed job still in its "
        "buffer has started_at of its claim)"
    )


class CancelOut(BaseModel):
    id: int
    previous_state: JobState
    state: JobState
    cancel_requested: bool


def document_kinds(
    openapi: dict[str, Any],
    specs: Mapping[str, type[BaseModel]],
    component: str,
    also: Mapping[str, Any] | None = None,
) -> None:
    """Rewrite an OpenAPI component that carries `kind` and `payload` (SubmitJob,
    ScheduleIn) as one variant per kind, discriminated by `kind`, each with its payload's
    own schema, so clients see exactly what each kind accepts. `also` adds keywords to every
    variant. Validation itself stays in `api.payloads`, which gives the clearer errors."""
    components = openapi["components"]["schemas"]
    base = components[component]
    _, defs = models_json_schema(
        [(model, "validation") for model in specs.values()],
        ref_template="#/components/schemas/{model}",
    )
    components.update(defs.get("$defs", {}))
    variants, mapping = [], {}
    for kind, model in sorted(specs.items()):
        name = f"{component}_{model.__name__}"
        payload_required = any(f.is_required() for f in model.model_fields.values())
        required = [r for r in base.get("required", []) if r not in ("kind", "payload")]
        components[name] = {
            **base,
            "title": f"{component} ({kind})",
            "properties": {
                **base["properties"],
                "kind": {"type": "string", "const": kind, "title": "Kind"},
                "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            },
            "required": ["kind", *(["payload"] if payload_required else []), *required],
            **(also or {}),
        }
        variants.append({"$ref": f"#/components/schemas/{name}"})
        mapping[kind] = f"#/components/schemas/{name}"
    components[component] = {
        "title": component,
        "description": f"{base.get('description') or component}: one variant per registered "
        "kind (GET /v1/kinds).",
        "oneOf": variants,
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    }


ONE_START_TIME = {
    "not": {
        "required": ["run_at", "delay_s"],
        "properties": {"run_at": {"type": "string"}, "delay_s": {"type": "number"}},
    }
}
"""SubmitJob: run_at and delay_s are alternatives."""


SCHEDULE_NAME = r"^[A-Za-z0-9_.-]+$"
"""No colon: the name is part of each fire's idempotency key, `cron:<name>:<fire time>`."""


class FollowUp(JsonInput):
    kind: str = Field(min_length=1, max_length=128, pattern=NAME)
    payload: dict[str, Any] = Field(default_factory=dict)


class ScheduleFields(JsonInput):
    cron: str = Field(
        min_length=1,
        max_length=256,
        description="5 fields (minute hour day-of-month month day-of-week) or 6 with "
        "seconds first; crontab meanings",
        examples=["30 21 * * 1-5"],
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64, pattern=TEXT)
    kind: str = Field(min_length=1, max_length=128, pattern=NAME)
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = Field(default="default", min_length=1, max_length=128, pattern=NAME)
    priority: int = Field(default=0, ge=-32768, le=32767)
    max_attempts: int = Field(default=5, ge=1, le=100)
    enabled: bool = True
    catch_up_s: int = Field(
        default=600, ge=0, le=366 * 86400, description="missed fires younger than this run"
    )
    backfill: bool = Field(
        default=False, description="after downtime, enqueue every missed fire, not the latest"
    )
    follow_ups: list[FollowUp] = Field(
        default_factory=list,
        max_length=10,
        description="jobs enqueued after every fire, each waiting for the one before it to"
        " succeed (and cancelled if it does not)",
    )


class ScheduleIn(ScheduleFields):
    name: str = Field(min_length=1, max_length=128, pattern=SCHEDULE_NAME)


def _not_nullable(schema: dict[str, Any]) -> None:
    """A patch's schema: each field its type, not nullable (None only means "not sent")."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options is not None:
            prop.update(next(o for o in options if o.get("type") != "null"))
        prop.pop("default", None)


class SchedulePatch(JsonInput):
    """Only the fields sent change; a field sent as null is refused (leave it out instead)."""

    model_config = ConfigDict(json_schema_extra=_not_nullable)

    cron: str | None = Field(default=None, min_length=1, max_length=256)
    timezone: str | None = Field(default=None, min_length=1, max_length=64, pattern=TEXT)
    kind: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME)
    payload: dict[str, Any] | None = None
    queue: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME)
    priority: int | None = Field(default=None, ge=-32768, le=32767)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    enabled: bool | None = None
    catch_up_s: int | None = Field(default=None, ge=0, le=366 * 86400)
    backfill: bool | None = None
    follow_ups: list[FollowUp] | None = Field(default=None, max_length=10)

    @model_validator(mode="after")
    def _no_nulls(self) -> SchedulePatch:
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: give a value, or leave the field out to keep it")
        return self


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    kind: str
    payload: Any
    queue: str
    priority: int
    max_attempts: int
    enabled: bool
    catch_up_s: int
    backfill: bool
    follow_ups: list[dict[str, Any]]
    next_fire_at: datetime | None = Field(description="read-only: the next fire, when known")
    last_fire_at: datetime | None = Field(description="read-only: the latest fire")
    created_at: datetime
    updated_at: datetime


def _key_name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


KeyName = Annotated[
    str,
    AfterValidator(_key_name),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": KEY_NAME_MAX, "pattern": KEY_NAME}
    ),
]
"""A new key's name, checked as `conveyor keys create` checks it (`stores.keys.name_problem`)."""


class KeyIn(JsonInput):
    """A new API key."""

    name: KeyName = Field(
        description="the key's principal: what it submits is owned by `key:NAME`; a name is "
        "never given to a second key, even a revoked one's"
    )
    role: Literal["user", "admin"] = Field(
        default="user", description="admin sees and manages everything; user, its own jobs"
    )


class KeyOut(BaseModel):
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = Field(description="null while the key is live")


class KeyCreatedOut(KeyOut):
    key: str = Field(
        description="the key itself: in this answer only, never again (only its SHA-256 is "
        "stored); send it as `Authorization: Bearer <key>`"
    )


class KeyRevokedOut(KeyOut):
    revoked_own_key: bool = Field(
        description="true when the request was made with this key, which answers 401 from now on"
    )
