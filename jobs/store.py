"""The queue's operations on Postgres: each a named statement from `jobs.sql`.

A `Store` wraps an asyncpg pool. Enqueue operations also accept `conn=`: pass your own
connection (inside your own transaction) and the job is written atomically with your other
writes — a rollback leaves no job and sends no notification.

`store.db` is the narrow handle (`jobs.db.Database`) on the same pool that everything outside
`jobs` uses: the area stores (`stores/`), a kind's load and save. `store.pool` is the queue's
own (and the tests').
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias, cast

import asyncpg

from jobs import sql
from jobs.batching import Batcher
from jobs.db import TRANSIENT_ERRORS, Database, create_pool
from jobs.errors import InvalidTransition, JobNotFound, ParentFailed
from jobs.logging import get_logger
from jobs.metrics import (
    DURATION_BUCKETS_S,
    Counts,
    Key,
    MinuteCounts,
    MinuteKey,
    outcome_label,
)
from jobs.model import (
    DEFAULT_MAX_ATTEMPTS,
    KEEP,
    REPLAYABLE_STATES,
    BrowseState,
    Claimed,
    Claims,
    Enqueued,
    Job,
    JobEvent,
    JobState,
    Keep,
    Lease,
    NewJob,
    RateLimit,
)
from jobs.ready import ROW_BYTES, Rotation, rotation
from jobs.settings import DatabaseSettings, QueueSettings
from jobs.transitions import Change, LeaseExpired, Outcome, decide
from jobs.wake import Notices

log = get_logger(__name__)

DEADLOCK_RETRIES = 3
MOVE_BATCH = 2000
"""Ready rows moved per statement when a half rotates: each batch is locked while it moves."""

Submitted: TypeAlias = Literal["new", "existing", "debounced"]
"""What a submission with a unique key did."""
Executor: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json(value: Any) -> str | None:
    """JSON text for a `$n::text::jsonb` parameter; SQL NULL for None."""
    if value is None:
        return None
    return "{}" if value == {} else _encode(value)


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """What a heartbeat learned: which leases are still ours, and which of those to cancel.

    Keyed by lease (job, owner, attempt), not by job id: a worker that lost attempt 1 of a
    job and claimed attempt 2 of it holds the second and must stop the first.
    """

    held: frozenset[Lease]
    cancel_requested: frozenset[Lease]

    def lost(self, leases: Sequence[Lease]) -> list[Lease]:
        return [lease for lease in leases if lease not in self.held]


@dataclass(frozen=True, slots=True)
class CancelResult:
    job_id: int
    previous: JobState
    state: JobState

    @property
    def requested(self) -> bool:
        """The job is running: its worker will stop it and mark it cancelled."""
        return self.state is JobState.RUNNING


@dataclass(frozen=True, slots=True)
class Reaped:
    job_id: int
    owner: str
    state: JobState
    queue: str
    kind: str
    outcome: str
    """`jobs.metrics.outcome_label` of what was applied."""


SEARCH_SPAN = 20_000
"""Ids a text search reads per call, newest first: a search for something rare costs one
bounded read per call however big `job` is, and the caller asks again from where it ended."""
SCAN_SPAN = 100_000
"""Ids a listing by kind or queue reads per call (no index serves them: one would cost every
state change of every job), for the same reason."""
COUNT_CAP = 10_000
"""`count_jobs` counts each state up to this (and one more, to say "more than")."""

_PARTS_OF_QUEUED = {
    BrowseState.SCHEDULED: "(state = 'queued' AND run_at > now() AND errors = '[]'::jsonb)",
    BrowseState.RETRYING: "(state = 'queued' AND errors <> '[]'::jsonb)",
}


_FINISHED = frozenset({BrowseState.SUCCEEDED, BrowseState.DEAD, BrowseState.CANCELLED})


def _state_clause(state: BrowseState) -> str:
    return _PARTS_OF_QUEUED.get(state) or f"state = '{JobState(state.value).value}'"


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a listing shows. Unset fields do not filter; `states` match any of them.

    `search` is a job's id (digits, `#` allowed before them), or text that equals an
    idempotency key or appears anywhere in the payload's JSON (case-insensitive)."""

    owner: str | None = None
    states: Sequence[BrowseState] = ()
    kinds: Sequence[str] = ()
    queues: Sequence[str] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    search: str | None = None

    @property
    def search_id(self) -> int | None:
        text = (self.search or "").strip().removeprefix("#")
        return int(text) if _JOB_ID.fullmatch(text) else None

    @property
    def search_text(self) -> str | None:
        text = (self.search or "").strip()
        return text if text and self.search_id is None else None

    def where(self, params: list[Any]) -> list[str]:
        """The clauses, each value appended to `params` and bound as a parameter."""
        clauses: list[str] = []
        for column, op, value, cast_ in (
            ("owner", "=", self.owner, "text"),
            ("created_at", ">=", self.created_after, "timestamptz"),
            ("created_at", "<", self.created_before, "timestamptz"),
            ("finished_at", ">=", self.finished_after, "timestamptz"),
            ("finished_at", "<", self.finished_before, "timestamptz"),
            ("id", "=", self.search_id, "bigint"),
        ):
            if value is not None:
                params.append(value)
                clauses.append(f"{column} {op} ${len(params)}::{cast_}")
        for column, values in (("kind", list(self.kinds)), ("queue", list(self.queues))):
            if values:
                params.append(values)
                clauses.append(f"{column} = ANY(${len(params)}::text[])")
        if self.states:
            clauses.append("(" + " OR ".join(_state_clause(st) for st in self.states) + ")")
        if (text := self.search_text) is not None:
            params.extend([text, "%" + _like_escaped(text) + "%"])
            clauses.append(
                f"(idempotency_key = ${len(params) - 1} OR payload::text ILIKE ${len(params)})"
            )
        return clauses


_JOB_ID = re.compile(r"[0-9]{1,18}")
"""ASCII digits only: `str.isdigit` holds for "²" too, which `int` refuses."""


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class JobListing:
    jobs: list[Job]
    next_before: int | None
    """Ask again with `before_id` = this for the next page; None when there is no more. A
    text search's page may hold fewer jobs than asked for and still have a next one."""


@dataclass(frozen=True, slots=True)
class DepthSample:
    """What `sample_depth` did: whether this call wrote the minute's counts (False: another
    had), for how many queues, and how long until the database's next minute."""

    sampled: bool
    queues: int
    next_minute_in_s: float


@dataclass(frozen=True, slots=True)
class RetryFilter:
    """Which finished jobs `retry_many` replays. Unset fields do not filter."""

    states: frozenset[JobState] = frozenset({JobState.DEAD})
    kind: str | None = None
    queue: str | None = None
    owner: str | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    ids: Sequence[int] | None = None

    def where(self, first_param: int) -> tuple[str, list[Any]]:
        states = sorted(s.value for s in self.states if s in REPLAYABLE_STATES)
        clauses: list[str] = [f"state = ANY(${first_param}::text[])"]
        params: list[Any] = [states]
        for column, op, value, cast_ in (
            ("kind", "=", self.kind, "text"),
            ("queue", "=", self.queue, "text"),
            ("owner", "=", self.owner, "text"),
            ("finished_at", ">=", self.finished_after, "timestamptz"),
            ("finished_at", "<", self.finished_before, "timestamptz"),
        ):
            if value is not None:
                params.append(value)
                clauses.append(f"{column} {op} ${first_param + len(params) - 1}::{cast_}")
        if self.ids is not None:
            params.append(list(self.ids))
            clauses.append(f"id = ANY(${first_param + len(params) - 1}::bigint[])")
        return " AND ".join(clauses), params


def _usable(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when it died
        return False


@dataclass(slots=True)
class _Kept:
    """One pool connection kept out for one statement family, with session settings of its
    own, while nobody else is using it (callers that find it busy use the pool). Borrowing
    from asyncpg's pool costs about 70 µs a call; a SET LOCAL needs a transaction, which is
    two more round trips. The settings are undone before it goes back to the pool, which
    happens only when it breaks or the store closes."""

    setup: str
    reset: str
    conn: asyncpg.Connection | None = None
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, pool: asyncpg.Pool) -> asyncpg.Connection:
        if self.conn is not None and not _usable(self.conn):
            await self.drop(pool)  # it died while idle (a restart): take a fresh one
        if self.conn is None:
            conn = await pool.acquire()
            try:
                await conn.execute(self.setup)
            except BaseException:
                with contextlib.suppress(Exception):
                    await pool.release(conn)
                raise
            self.conn = conn
        return self.conn

    async def drop(self, pool: asyncpg.Pool) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            # Broken, or left mid-statement (cancelled, timed out): closed rather than handed
            # back with its session settings, which would then plan the pool's statements.
            # A connection that died was already taken back by the pool: terminating or
            # releasing it again raises, and there is nothing left to do.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            with contextlib.suppress(Exception):
                await pool.release(conn)

    async def close(self, pool: asyncpg.Pool) -> None:
        async with self.busy:
            if self.conn is not None:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await self.conn.execute(self.reset)
            await self.drop(pool)


@dataclass(slots=True)
class _Controls:
    """The control rows one claim holds locked: each controlled queue's (paused,
    concurrency) and each limited kind's limits and rate."""

    queues: dict[str, asyncpg.Record]
    kinds: dict[str, asyncpg.Record] = field(default_factory=dict)


def _kept_for_inserts() -> _Kept:
    # An insert has one plan. Planning it again on every call, as the pool's connections do
    # (force_custom_plan, jobs.db.SERVER_SETTINGS), is most of its cost since fair share:
    # measured on 2026-12-04, eight clients inserting one job a statement, 1,131-1,218 a
    # second planned each time against 2,419-2,968 with the plan kept (planning 0.78 ms of
    # a statement that runs in 0.37). Forced rather than left to `auto`, which keeps
    # planning a batch of a few jobs afresh (its generic plan is costed for 100 rows): 1.1-1.3
    # ms of the server's CPU for a batch of one to three, against 0.43-0.53 generic; from 20
    # jobs up the two are level.
    return _Kept("SET plan_cache_mode = force_generic_plan", "RESET plan_cache_mode")


@dataclass(slots=True)
class Store:
    pool: asyncpg.Pool
    settings: QueueSettings = field(default_factory=QueueSettings)
    inserters: int = 1
    """Connections kept for single inserts (`enqueue`, `submit`), each taken as concurrent
    inserts need it; beyond them an insert uses the pool's. The API keeps up to half its
    pool (`Store.connect(inserters=…)`); a worker, whose inserts are few, keeps one."""
    _inserters: list[_Kept] = field(default_factory=list, repr=False)
    _claimer: _Kept = field(
        default_factory=lambda: _Kept(sql.HOT_PLANNER, sql.HOT_PLANNER_RESET), repr=False
    )
    _finisher: _Kept = field(
        default_factory=lambda: _Kept(sql.HOT_PLANNER, sql.HOT_PLANNER_RESET), repr=False
    )
    _batcher: _Kept = field(default_factory=lambda: _kept_for_inserts(), repr=False)
    """The connection kept for batches (`enqueue_many`, and the single enqueues gathered while
    every inserter was busy). Planned once, a batch of one to three jobs costs the server
    0.43-0.53 ms of CPU, three times what a single insert does for three times the jobs;
    planned afresh on a pool connection it cost 1.1-1.3 ms. Measured on 2026-12-04, one store
    enqueuing 2,000 jobs/s open loop: pickup p99 15-16 ms with one inserter and this, against
    23-27 ms with five inserters each inserting one job a statement."""
    pooled: bool = False
    """Behind a transaction pooler (DB_POOLER=transaction): no connection is kept with
    session settings; the hot statements set theirs with SET LOCAL in a transaction."""
    _controlled: set[str] = field(default_factory=set, repr=False)
    """Queues found paused or limited: claimed under their control row's lock."""
    _lanes: tuple[float, list[tuple[str, int]]] = field(default=(-1.0, []), repr=False)
    """When the limited kinds were last read, and each one's lane (read at most once a
    second: a kind's limit applies to every worker within a second)."""
    _lane_turn: int = field(default=0, repr=False)
    _limited_jobs: dict[int, str] = field(default_factory=dict, repr=False)
    """Jobs claimed under a limit (of their queue or kind), and their queue: their finish
    frees a slot."""
    _held_back: set[str] = field(default_factory=set, repr=False)
    """Queues whose last claim here came back short: a limit may be holding their jobs back,
    so a finish of a limited job wakes their workers. (Where claims come back full, the
    workers claim again at once: a wake would only cost a statement and a NOTIFY.)"""
    db: Database = field(init=False, repr=False)
    """The narrow handle on `pool` for code outside `jobs`: statements and transactions,
    never the pool itself."""
    notices: Notices = field(init=False, repr=False)
    """Wake-ups and change notifications, sent after the commits that made them."""

    _enqueues: Batcher[NewJob, Enqueued] = field(init=False, repr=False)
    """Single enqueues made while the kept connection is busy, inserted together."""
    _inserts: int = field(default=0, repr=False)
    """Single inserts (`enqueue`, `submit`) in flight outside a caller's transaction."""

    def __post_init__(self) -> None:
        self._inserters.append(_kept_for_inserts())
        self.db = Database(self.pool)
        self.notices = Notices(self.pool)
        self._enqueues = Batcher(self._enqueue_batch)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        settings: QueueSettings | None = None,
        db: DatabaseSettings | None = None,
        inserters: int = 1,
    ) -> Store:
        db = db or DatabaseSettings()
        return cls(
            await create_pool(url, db),
            settings or QueueSettings(),
            pooled=db.pooled,
            inserters=inserters,
        )

    async def close(self) -> None:
        await self._enqueues.close()
        await self.notices.close()
        for kept in self._inserters:
            await kept.close(self.pool)
        await self._claimer.close(self.pool)
        await self._finisher.close(self.pool)
        await self._batcher.close(self.pool)
        await self.pool.close()

    def _inserter(self) -> _Kept:
        """A kept insert connection that is free (a new one while there are fewer than
        `inserters`), else a busy one, which `_kept` passes over."""
        for kept in self._inserters:
            if not kept.busy.locked():
                return kept
        if len(self._inserters) < self.inserters:
            self._inserters.append(_kept_for_inserts())
            return self._inserters[-1]
        return self._inserters[0]

    @contextlib.asynccontextmanager
    async def _kept(self, kept: _Kept) -> AsyncIterator[asyncpg.Connection | None]:
        """`kept`'s connection when it is free (and no pooler is in between), else None."""
        if self.pooled or kept.busy.locked():
            yield None
            return
        async with kept.busy:
            own = await kept.get(self.pool)
            try:
                yield own
            except BaseException as exc:
                if isinstance(exc, (*TRANSIENT_ERRORS, asyncio.CancelledError)):
                    await kept.drop(self.pool)  # broken, or left mid-statement
                raise

    @contextlib.asynccontextmanager
    async def _hot(
        self, kept: _Kept, conn: asyncpg.Connection | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A connection planned as sql.HOT_PLANNER says: the caller's (which must be in a
        transaction), else `kept` when it is free, else one of the pool's inside a
        transaction. In autocommit on the kept one, a claim holds the halves' locks for its
        own statement only (a rotation waits on them), and costs one round trip."""
        if conn is not None:
            await conn.execute(sql.HOT_PLANNER_LOCAL)
            yield conn
            return
        async with self._kept(kept) as own:
            if own is not None:
                yield own
                return
        async with self.pool.acquire() as c, c.transaction():
            await c.execute(sql.HOT_PLANNER_POOLED if self.pooled else sql.HOT_PLANNER_LOCAL)
            yield c

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(self, job: NewJob, *, conn: asyncpg.Connection | None = None) -> Enqueued:
        """Insert one job, or report the existing one when its idempotency key is taken (or
        its unique key is held by an active job).

        In the caller's transaction (`conn`), the workers are notified at its commit, and
        not at all if it rolls back. Otherwise a job alone is inserted on the store's kept
        connection, its wake-up in the same statement (the quickest pickup); enqueues made
        meanwhile are inserted together (`jobs.batching`) and wake the workers after their
        commit (`jobs.wake`). Only a job that is due wakes anyone."""
        if conn is not None:
            if job.unique_key is not None:
                row, outcome = await self._enqueue_unique(conn, job, notify=True)
                return Enqueued(id=row["id"], duplicate=outcome != "new")
            row, duplicate = await self._enqueue_one(conn, job, sql.ENQUEUE, sql.FIND_BY_KEY)
            return Enqueued(id=row["id"], duplicate=duplicate)
        if job.unique_key is not None:
            row, outcome = await self._enqueue_unique(self.pool, job, notify=False)
            self._wake_if_new(job, row, outcome != "new")
            return Enqueued(id=row["id"], duplicate=outcome != "new")
        with self._inserting() as alone:
            async with self._kept(self._inserter()) as own:
                if own is not None:
                    row, duplicate = await self._insert_one(
                        own, job, alone, (sql.ENQUEUE, sql.ENQUEUE_QUIETLY), sql.FIND_BY_KEY
                    )
                    return Enqueued(id=row["id"], duplicate=duplicate)
            return await self._enqueues.submit(job)

    @contextlib.contextmanager
    def _inserting(self) -> Iterator[bool]:
        """Counts a single insert in flight; yields whether it is the only one (no other,
        no batch running)."""
        alone = self._inserts == 0 and not self._enqueues.running
        self._inserts += 1
        try:
            yield alone
        finally:
            self._inserts -= 1

    async def _insert_one(
        self,
        db: Executor,
        job: NewJob,
        alone: bool,
        statements: tuple[str, str],
        find: str,
    ) -> tuple[asyncpg.Record, bool]:
        """One job by `statements` (the one that notifies, the quiet one), outside a
        caller's transaction. Alone, its wake-up rides in its statement (the quickest
        pickup). Otherwise it is inserted quietly and wakes the workers after its commit: a
        commit that notifies holds the notification lock through its WAL flush, and the
        wake-ups of the inserts around it (each sent after its own commit) would wait
        behind it."""
        notifying, quiet = statements
        if alone:
            return await self._enqueue_one(db, job, notifying, find)
        row, duplicate = await self._enqueue_one(db, job, quiet, find)
        self._wake_if_new(job, row, duplicate)
        return row, duplicate

    def _wake_if_new(self, job: NewJob, row: asyncpg.Record, duplicate: bool) -> None:
        """After the commit that inserted `row` quietly: wake its queue if it is new and due."""
        if not duplicate and row["due"]:
            self.notices.wake(job.queue)

    async def _enqueue_batch(self, jobs: list[NewJob]) -> list[Enqueued | BaseException]:
        """`Batcher`'s run for the single enqueues: one statement for them all, or, when a
        job's values fail it (which leaves nothing inserted), each alone with its own
        answer. Any other error reaches every caller: the batch may have been inserted, and
        inserting it again could make a job twice."""
        try:
            if len(jobs) == 1:
                async with self._kept(self._batcher) as own:
                    row, duplicate = await self._insert_one(
                        own or self.pool,
                        jobs[0],
                        False,
                        (sql.ENQUEUE, sql.ENQUEUE_QUIETLY),
                        sql.FIND_BY_KEY,
                    )
                return [Enqueued(id=row["id"], duplicate=duplicate)]
            # Keyed jobs in one order for every batch, so two batches in flight that share
            # keys wait for each other instead of deadlocking; the rest keep their order.
            order = sorted(
                range(len(jobs)),
                key=lambda i: (
                    ("", "")
                    if jobs[i].idempotency_key is None
                    else (jobs[i].owner, jobs[i].idempotency_key)
                ),
            )
            inserted = await self.enqueue_many([jobs[i] for i in order])
            by_input: list[Enqueued | BaseException] = list(inserted)
            for i, answer in zip(order, inserted, strict=True):
                by_input[i] = answer
            return by_input
        except (
            asyncpg.DataError,
            asyncpg.IntegrityConstraintViolationError,
            TypeError,
            ValueError,
        ) as exc:
            if len(jobs) == 1:
                return [exc]
        answers: list[Enqueued | BaseException] = []
        for job in jobs:
            try:
                answers.extend(await self._enqueue_batch([job]))
            except Exception as exc:
                answers.append(exc)
        return answers

    async def submit(self, job: NewJob) -> tuple[Job, bool]:
        """`enqueue` answering with the whole job (the new one, or the one its idempotency
        key already named, with True) in a single round trip when the job is new."""
        if job.unique_key is not None:
            unique, outcome = await self.submit_unique(job)
            return unique, outcome != "new"
        statements = (sql.ENQUEUE_RETURNING_JOB, sql.ENQUEUE_RETURNING_JOB_QUIETLY)
        with self._inserting() as alone:
            async with self._kept(self._inserter()) as own:
                row, duplicate = await self._insert_one(
                    own or self.pool,
                    job,
                    own is not None and alone,
                    statements,
                    sql.FIND_JOB_BY_KEY,
                )
        return Job.from_row(row), duplicate

    async def submit_unique(self, job: NewJob) -> tuple[Job, Submitted]:
        """A job with a `unique_key`: the new job; or the active one that holds the key
        ("existing"), or, with `debounce_s`, the queued one that took this one's payload and
        start ("debounced")."""
        row, outcome = await self._enqueue_unique(self.pool, job, notify=False)
        self._wake_if_new(job, row, outcome != "new")
        return Job.from_row(row), outcome

    async def submit_after(
        self,
        job: NewJob,
        parents: Sequence[int],
        *,
        visible_to: str | None = None,
    ) -> tuple[Job, bool]:
        """A job that waits until every job in `parents` has succeeded (queued at once when
        they all have). `visible_to`: parents must be this owner's (None: anyone's).
        Raises JobNotFound for a parent that is not there (or not visible), and
        ParentFailed for one that ended dead or cancelled (it would never succeed)."""
        wanted = sorted(set(parents))
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql.LOCK_PARENTS, wanted)
            found = {r["id"]: r for r in rows if visible_to is None or r["owner"] == visible_to}
            for parent in wanted:
                if parent not in found:
                    raise JobNotFound(parent)
                if found[parent]["state"] in ("dead", "cancelled"):
                    raise ParentFailed(parent, found[parent]["state"])
            pending = [p for p in wanted if found[p]["state"] != "succeeded"]
            if pending:
                return await self._enqueue_waiting(conn, job, pending)
            row, duplicate = await self._enqueue_one(
                conn, job, sql.ENQUEUE_RETURNING_JOB_QUIETLY, sql.FIND_JOB_BY_KEY
            )
        self._wake_if_new(job, row, duplicate)  # committed, its parents all succeeded
        return Job.from_row(row), duplicate

    async def _enqueue_waiting(
        self, conn: asyncpg.Connection, job: NewJob, pending: list[int]
    ) -> tuple[Job, bool]:
        while True:
            row = await conn.fetchrow(sql.ENQUEUE_WAITING, *self._insert_args(job), pending)
            if row is not None:
                return Job.from_row(row), False
            existing = await conn.fetchrow(sql.FIND_JOB_BY_KEY, job.owner, job.idempotency_key)
            if existing is not None:
                return Job.from_row(existing), True

    async def sweep_waiting(self, limit: int = 1000) -> tuple[list[int], list[int]]:
        """Decide the waiting jobs (oldest first, up to `limit`): what a release missed (its
        worker died between a parent's finish and the release) is released here."""
        ids = [r["id"] for r in await self.pool.fetch(sql.WAITING_JOBS, limit)]
        return await self.decide_waiting(waiting=ids) if ids else ([], [])

    async def decide_waiting(
        self,
        *,
        waiting: Sequence[int] = (),
        parents: Sequence[int] = (),
        conn: asyncpg.Connection | None = None,
    ) -> tuple[list[int], list[int]]:
        """Queue the waiting jobs (given, or waiting for `parents`) whose parents have all
        succeeded, and cancel, naming it, those with a parent that ended dead or cancelled,
        and theirs in turn. Returns (released, cancelled)."""
        released: list[int] = []
        cancelled: list[int] = []
        targets, after = list(waiting), list(parents)
        while targets or after:
            async with contextlib.AsyncExitStack() as stack:
                db: asyncpg.Connection = conn or await stack.enter_async_context(
                    self.pool.acquire()
                )
                await stack.enter_async_context(db.transaction())
                locked = [r["id"] for r in await db.fetch(sql.LOCK_WAITING, targets, after)]
                if not locked:
                    break
                row = await db.fetchrow(sql.DECIDE_WAITING, locked)
            assert row is not None
            released += row["released"]
            cancelled += row["cancelled"]
            targets, after = [], list(row["cancelled"])  # their own dependants next
        if released or cancelled:
            log.info("job.dependants_decided", released=len(released), cancelled=len(cancelled))
        return released, cancelled

    @staticmethod
    def _insert_args(job: NewJob) -> tuple[Any, ...]:
        """$1–$10 of the statements that insert one job (`sql._enqueue_one`'s order)."""
        return (
            job.queue,
            job.kind,
            _json(dict(job.payload)),
            job.priority,
            job.run_at,
            job.max_attempts,
            job.timeout_s,
            job.idempotency_key,
            job.owner,
            job.run_after_s,
        )

    async def _enqueue_unique(
        self, db: Executor, job: NewJob, *, notify: bool
    ) -> tuple[asyncpg.Record, Submitted]:
        assert job.unique_key is not None
        run_after_s = job.run_after_s
        if job.debounce_s is not None and job.run_at is None and run_after_s is None:
            run_after_s = job.debounce_s
        payload = _json(dict(job.payload))
        existing = None
        # A few turns at most: each ends once a job with the key is found, made or replaced;
        # one starts again only when that job moved on between two statements.
        for _ in range(5):
            if job.debounce_s is not None:
                moved = await db.fetchrow(
                    sql.DEBOUNCE, job.owner, job.unique_key, payload, job.debounce_s
                )
                if moved is not None:
                    return moved, "debounced"
            row = await db.fetchrow(
                sql.ENQUEUE_UNIQUE,
                *self._insert_args(dataclasses.replace(job, run_after_s=run_after_s)),
                job.unique_key,
                notify,
            )
            if row is not None:
                return row, "new"
            if job.idempotency_key is not None:
                existing = await db.fetchrow(sql.FIND_JOB_BY_KEY, job.owner, job.idempotency_key)
                if existing is not None:
                    return existing, "existing"
            existing = await db.fetchrow(sql.FIND_ACTIVE_BY_UNIQUE_KEY, job.owner, job.unique_key)
            if existing is not None and (job.debounce_s is None or existing["state"] != "queued"):
                return existing, "existing"
            # it finished (or, queued, lost a debounce to a claim) in between: again
        if existing is not None:
            return existing, "existing"
        raise RuntimeError(f"unique key {job.unique_key!r} kept changing hands: try again")

    async def _enqueue_one(
        self, db: Executor, job: NewJob, insert: str, find: str
    ) -> tuple[asyncpg.Record, bool]:
        while True:
            row = await db.fetchrow(insert, *self._insert_args(job))
            if row is not None:
                return row, False
            assert job.idempotency_key is not None, "only a key conflict skips an insert"
            existing = await db.fetchrow(find, job.owner, job.idempotency_key)
            if existing is not None:
                return existing, True
            # The conflicting job was pruned between the two statements: insert again.

    async def enqueue_many(
        self, jobs: Sequence[NewJob], *, conn: asyncpg.Connection | None = None
    ) -> list[Enqueued]:
        """Insert many jobs in one statement; the result is in input order. The queues that
        got a job due now are woken: in the caller's transaction (`conn`) at its commit,
        otherwise just after the insert's own.

        Two concurrent batches that share idempotency keys in different orders can deadlock
        on each other's uncommitted rows; Postgres aborts one. On the store's own pool the
        batch is then simply sent again; inside a caller's transaction the error is the
        caller's to handle (the transaction is aborted).
        """
        if not jobs:
            return []
        if any(j.unique_key is not None for j in jobs):
            raise ValueError("a job with a unique_key is enqueued one at a time (Store.enqueue)")
        if conn is not None:
            return await self._enqueue_many(conn, jobs, conn)
        async with self._kept(self._batcher) as own:  # planned once, when it is free
            return await self._enqueue_many(own or self.pool, jobs, None)

    async def _enqueue_many(
        self, db: Executor, jobs: Sequence[NewJob], conn: asyncpg.Connection | None
    ) -> list[Enqueued]:
        for tries_left in range(DEADLOCK_RETRIES, -1, -1):
            try:
                row = await self._insert_many(db, jobs, quietly=conn is None)
                break
            except asyncpg.DeadlockDetectedError:
                if conn is not None or not tries_left:
                    raise
                log.warning("job.enqueue_deadlock", jobs=len(jobs), tries_left=tries_left)
        if conn is None and row["due_queues"]:
            self.notices.wake(row["due_queues"])
        ids: list[int] = row["ids"] or []
        if len(ids) == len(jobs):
            return [Enqueued(id=i) for i in ids]
        # Keys that were taken: each inserted keyed job is found by (owner, key); unkeyed jobs
        # take the remaining ids in ascending order (see ENQUEUE_MANY).
        holder: dict[tuple[str, str], int] = {
            (owner, key): i
            for i, owner, key in zip(
                row["keyed_ids"] or [], row["key_owners"] or [], row["keys"] or [], strict=True
            )
        }
        inserted_keys = set(holder)
        keyed_ids = set(holder.values())
        unkeyed = iter([i for i in ids if i not in keyed_ids])
        taken = {
            (j.owner, j.idempotency_key)
            for j in jobs
            if j.idempotency_key is not None and (j.owner, j.idempotency_key) not in inserted_keys
        }
        if taken:
            # Held by earlier jobs: a second statement, with a fresh snapshot, finds them.
            rows = await db.fetch(sql.FIND_BY_KEYS, [o for o, _ in taken], [k for _, k in taken])
            holder.update({(r["owner"], r["key"]): r["id"] for r in rows})
        vanished = {
            key: j
            for j in jobs
            if (key := (j.owner, j.idempotency_key or "")) in taken and key not in holder
        }
        if vanished:
            # The holder was pruned between the two statements: insert those jobs again.
            again = await self.enqueue_many(list(vanished.values()), conn=conn)
            for key, enq in zip(vanished, again, strict=True):
                holder[key] = enq.id
                if not enq.duplicate:
                    inserted_keys.add(key)
        result: list[Enqueued] = []
        first_seen: set[tuple[str, str]] = set()
        for j in jobs:
            if j.idempotency_key is None:
                result.append(Enqueued(id=next(unkeyed)))
                continue
            key = (j.owner, j.idempotency_key)
            created_here = key in inserted_keys and key not in first_seen
            first_seen.add(key)
            result.append(Enqueued(id=holder[key], duplicate=not created_here))
        return result

    async def _insert_many(
        self, db: Executor, jobs: Sequence[NewJob], *, quietly: bool
    ) -> asyncpg.Record:
        row = await db.fetchrow(
            sql.ENQUEUE_MANY_QUIETLY if quietly else sql.ENQUEUE_MANY,
            [j.queue for j in jobs],
            [j.kind for j in jobs],
            [_json(dict(j.payload)) for j in jobs],
            [j.priority for j in jobs],
            [j.run_at for j in jobs],
            [j.max_attempts for j in jobs],
            [j.timeout_s for j in jobs],
            [j.idempotency_key for j in jobs],
            [j.owner for j in jobs],
            [j.run_after_s for j in jobs],
        )
        assert row is not None
        return row

    # -- the worker's statements -----------------------------------------------------------

    async def claim(
        self,
        queues: Sequence[str],
        limit: int,
        worker_id: str,
        lease_s: float,
        *,
        now: datetime | None = None,
        kinds: Collection[str] | None = None,
    ) -> Claims:
        """Claim up to `limit` jobs across `queues`, one statement per queue and limited
        kind (`kinds`: those the caller runs; None: any).

        Never more than `limit` in all. Callers rotate the queue order between calls so
        that a busy first queue cannot starve the others; the limited kinds' lanes take
        turns with the rest of each queue here. A lane held back by its rate says when it
        opens (`Claims.opens_in_s`).
        """
        lanes = await self._limited_lanes(kinds)
        claimed = await self._claim_units(queues, lanes, limit, worker_id, lease_s, now)
        self.notices.changed([c.id for c in claimed])
        if len(claimed) < limit:
            self._held_back.update(queues)
        else:
            self._held_back.difference_update(queues)
        return claimed

    async def _claim_units(
        self,
        queues: Sequence[str],
        lanes: Sequence[tuple[str, int]],
        limit: int,
        worker_id: str,
        lease_s: float,
        now: datetime | None,
    ) -> Claims:
        claimed = Claims()
        async with self._hot(self._claimer) as conn:
            if len(queues) == 1 and not lanes:
                claimed += await self._claim_queue(conn, queues[0], limit, worker_id, lease_s, now)
                return claimed
            units: list[tuple[str, tuple[str, int] | None]] = []
            for queue in queues:
                order: list[tuple[str, int] | None] = [None, *lanes]
                turn = self._lane_turn % len(order)
                units += [(queue, lane) for lane in order[turn:] + order[:turn]]
            self._lane_turn += 1
            # Several statements: one transaction, so that a failure or a cancelled caller
            # part-way through leaves no job claimed that nobody will run. Every control lock
            # it needs is taken first, in one order for every claim (queues, then kinds, each
            # by name), so claims wait for each other instead of deadlocking or passing over.
            async with conn.transaction():
                await conn.execute(sql.GENERIC_PLANS_LOCAL)
                controls = await self._lock_controls(conn, queues, lanes)
                for queue, lane in units:
                    want = limit - len(claimed)
                    if want <= 0:
                        break
                    if lane is None:
                        claimed += await self._claim_queue(
                            conn, queue, want, worker_id, lease_s, now, locked=controls
                        )
                        continue
                    limits = controls.kinds.get(lane[0])
                    queue_control = controls.queues.get(queue)
                    if limits is None or (queue_control is not None and queue_control["paused"]):
                        continue
                    queue_limit = None if queue_control is None else queue_control["concurrency"]
                    rows, opens_in_s = await self._claim_lane(
                        conn, queue, lane, want, worker_id, lease_s, now, queue_limit, limits
                    )
                    claimed += rows
                    if opens_in_s is not None:  # the soonest any held-back lane opens
                        known = claimed.opens_in_s
                        claimed.opens_in_s = opens_in_s if known is None else min(known, opens_in_s)
            return claimed

    async def _limited_lanes(self, kinds: Collection[str] | None) -> list[tuple[str, int]]:
        read_at, lanes = self._lanes
        if time.monotonic() - read_at >= 1.0:
            rows = await self.pool.fetch(sql.KIND_CONTROLS)
            lanes = [(r["kind"], r["lane"]) for r in rows]
            self._lanes = (time.monotonic(), lanes)
        return [lane for lane in lanes if kinds is None or lane[0] in kinds]

    async def _lock_controls(
        self, conn: asyncpg.Connection, queues: Sequence[str], lanes: Sequence[tuple[str, int]]
    ) -> _Controls:
        """The control rows a claim of several units needs, locked in the one order. With
        lanes, every queue's (a lane's claim must know a queue limit set a moment ago);
        without, only the queues known to be controlled (the plain claim's guard finds the
        others)."""
        names = sorted(set(queues) if lanes else self._controlled.intersection(queues))
        kinds = sorted(kind for kind, _ in lanes)
        controls = _Controls({})
        if names or kinds:
            for r in await conn.fetch(sql.LOCK_CONTROLS, names, kinds):
                (controls.queues if r["is_queue"] else controls.kinds)[r["name"]] = r
        self._controlled.difference_update(names)
        self._controlled.update(controls.queues)
        return controls

    async def _claim_lane(
        self,
        conn: asyncpg.Connection,
        queue: str,
        lane: tuple[str, int],
        want: int,
        worker_id: str,
        lease_s: float,
        now: datetime | None,
        queue_limit: int | None,
        limits: asyncpg.Record,
    ) -> tuple[list[Claimed], float | None]:
        """A limited kind's lane in one queue, its control rows locked (sql.CLAIM_LANE).
        With the jobs, when the kind's rate opens again if it may have held some back (None:
        it did not)."""
        kind, number = lane
        rate = limits["rate_allowed"], limits["rate_period_s"], limits["rate_partition"]
        rows = await conn.fetch(
            sql.CLAIM_LANE,
            queue,
            want,
            worker_id,
            lease_s,
            now,
            queue_limit,
            number,
            kind,
            limits["concurrency"],
            limits["owner_concurrency"],
            *rate,
        )
        opens_in_s = None
        if rate[0] is not None and len(rows) < want:
            opens_in_s = await conn.fetchval(sql.RATE_OPENS_IN, kind, rate[0], rate[1], now)
        for r in rows:
            self._limited_jobs[r["id"]] = queue
        return [Claimed(*r) for r in rows], opens_in_s

    async def _claim_queue(
        self,
        conn: asyncpg.Connection,
        queue: str,
        want: int,
        worker_id: str,
        lease_s: float,
        now: datetime | None,
        *,
        locked: _Controls | None = None,
    ) -> list[Claimed]:
        """One queue's claim: the one-statement CLAIM while nobody controls the queue; under
        its queue_control row's lock once it is paused or limited (sql.CLAIM_UNDER_LIMIT).
        Which one is learnt from an empty claim, so a claim that finds jobs costs nothing
        more, and a control set or lifted applies to the very next claim. `locked`: the
        claim of several units already holds the control locks it takes (a queue found
        controlled meanwhile waits for the next claim: a lock taken now would be out of
        order)."""
        if locked is not None:
            control = locked.queues.get(queue)
            claimed = await self._claim_by_control(
                conn, queue, want, worker_id, lease_s, now, control
            )
            newly_controlled = control is None and not claimed
            if newly_controlled and await conn.fetchrow(sql.QUEUE_CONTROL, queue) is not None:
                self._controlled.add(queue)
            return claimed
        if queue not in self._controlled:
            rows = await conn.fetch(sql.CLAIM, queue, want, worker_id, lease_s, now)
            if rows or await conn.fetchrow(sql.QUEUE_CONTROL, queue) is None:
                return [Claimed(*r) for r in rows]
            self._controlled.add(queue)
        async with conn.transaction():
            await conn.execute(sql.GENERIC_PLANS_LOCAL)  # planned under the lock otherwise
            control = await conn.fetchrow(sql.LOCK_QUEUE_CONTROL, queue)
            if control is None:
                self._controlled.discard(queue)
            return await self._claim_by_control(conn, queue, want, worker_id, lease_s, now, control)

    async def _claim_by_control(
        self,
        conn: asyncpg.Connection,
        queue: str,
        want: int,
        worker_id: str,
        lease_s: float,
        now: datetime | None,
        control: asyncpg.Record | None,
    ) -> list[Claimed]:
        """A queue's claim by its control row, locked: the plain CLAIM without one, nothing
        while it is paused, CLAIM_UNDER_LIMIT while it is limited."""
        if control is None:
            rows = await conn.fetch(sql.CLAIM, queue, want, worker_id, lease_s, now)
            return [Claimed(*r) for r in rows]
        if control["paused"]:
            return []
        rows = await conn.fetch(
            sql.CLAIM_UNDER_LIMIT, queue, want, worker_id, lease_s, now, control["concurrency"]
        )
        for r in rows:
            self._limited_jobs[r["id"]] = queue
        return [Claimed(*r) for r in rows]

    async def extend_leases(
        self,
        worker_id: str,
        leases: Sequence[Lease],
        lease_s: float,
        *,
        now: datetime | None = None,
    ) -> LeaseStatus:
        if not leases:
            return LeaseStatus(frozenset(), frozenset())
        async with self._hot(self._finisher) as conn:
            rows = await conn.fetch(
                sql.EXTEND_LEASES,
                [lease.job_id for lease in leases],
                [lease.attempt for lease in leases],
                lease_s,
                now,
                worker_id,
            )
        held = {Lease(r["id"], worker_id, r["attempt"]): r["cancel_requested"] for r in rows}
        return LeaseStatus(
            held=frozenset(held),
            cancel_requested=frozenset(lease for lease, cancel in held.items() if cancel),
        )

    async def finish_many(
        self,
        changes: Sequence[tuple[Lease, Change]],
        *,
        now: datetime | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> dict[Lease, JobState]:
        """Apply decided changes. Returns the leases that still held, with the state written
        (a requeue becomes `cancelled` when a cancel was requested). The others were dropped:
        the job had been rescued and may be running elsewhere."""
        if not changes:
            return {}
        unique = dict(changes)  # one change per lease: a second would race the first
        if len(unique) < len(changes):
            log.warning("job.duplicate_outcome", leases=len(changes) - len(unique))
            changes = list(unique.items())
        freed = {self._limited_jobs.pop(lease.job_id, None) for lease, _ in changes} - {None}
        try:
            applied, parents, quiet = await self._finish_many(changes, now, conn)
        finally:
            woken = freed & self._held_back
            if woken:  # a slot is free where claims came back short: its workers may claim now
                self.notices.wake({q for q in woken if q})
        if quiet:
            self.notices.changed([lease.job_id for lease in applied])
        if parents:
            try:
                await self.decide_waiting(parents=parents, conn=conn)
            except TRANSIENT_ERRORS as exc:  # the reaper's sweep decides them later
                log.warning("job.dependants_undecided", parents=parents, error=repr(exc))
        return applied

    async def _finish_many(
        self,
        changes: Sequence[tuple[Lease, Change]],
        now: datetime | None,
        conn: asyncpg.Connection | None,
    ) -> tuple[dict[Lease, JobState], list[int], bool]:
        """The leases that held, with the state written; the finished jobs that others wait
        for; and whether the changes are still to be announced (`Notices.changed`): the
        common case's statement sends no notification, and is run only outside a caller's
        transaction (whose commit is not ours to follow)."""
        async with self._hot(self._finisher, conn) as db:
            owner = changes[0][0].owner
            if conn is None and all(
                c.state is JobState.SUCCEEDED
                and c.event is None
                and c.error is None
                and c.extra_attempts == 0
                and lease.owner == owner
                for lease, c in changes
            ):
                done = await db.fetch(
                    sql.SUCCEED_MANY,
                    [lease.job_id for lease, _ in changes],
                    [lease.attempt for lease, _ in changes],
                    [_json(change.result) for _, change in changes],
                    owner,
                    now,
                )
                held = {Lease(r["id"], owner, r["attempt"]): JobState.SUCCEEDED for r in done}
                self._log_lost(changes, held)
                return held, [r["id"] for r in done if r["has_dependants"]], True
            rows = await db.fetch(
                sql.FINISH_MANY,
                [lease.job_id for lease, _ in changes],
                [lease.attempt for lease, _ in changes],
                [lease.owner for lease, _ in changes],
                [change.state.value for _, change in changes],
                [change.run_after_s for _, change in changes],
                [_json(change.result) for _, change in changes],
                [_json(change.error) for _, change in changes],
                [change.extra_attempts for _, change in changes],
                [change.event.value if change.event else None for _, change in changes],
                [_json(change.event_data) if change.event else None for _, change in changes],
                now,
            )
            applied = {
                Lease(r["id"], r["lease_owner"], r["attempt"]): JobState(r["state"]) for r in rows
            }
            self._log_lost(changes, applied)
            parents = [
                r["id"] for r in rows if r["has_dependants"] and JobState(r["state"]).is_terminal
            ]
            return applied, parents, False

    @staticmethod
    def _log_lost(changes: Sequence[tuple[Lease, Change]], applied: Mapping[Lease, Any]) -> None:
        for lease, _ in changes:
            if lease not in applied:
                log.warning(
                    "job.lease_lost", job_id=lease.job_id, owner=lease.owner, attempt=lease.attempt
                )

    async def complete(
        self, job: Claimed, outcome: Outcome, *, now: datetime | None = None
    ) -> bool:
        """Decide and apply one outcome for a claimed job (the completer batches instead)."""
        change = decide(
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            outcome=outcome,
            now=now or await self._now(),
            backoff=self.settings.backoff(),
        )
        return job.lease in await self.finish_many([(job.lease, change)], now=now)

    async def reap(
        self,
        *,
        now: datetime | None = None,
        limit: int | None = None,
        within_s: float | None = None,
    ) -> list[Reaped]:
        """Expired leases back to queued (with backoff) or dead; an expiry uses an attempt.
        `within_s`: only leases that expired in the last this many seconds (None: all)."""
        backoff = self.settings.backoff()
        async with self.pool.acquire() as conn, conn.transaction():
            clock = now or cast(datetime, await conn.fetchval("SELECT now()"))
            rows = await conn.fetch(
                sql.LOCK_EXPIRED, clock, limit or self.settings.reap_batch, within_s
            )
            if not rows:
                return []
            changes = [
                (
                    Lease(r["id"], r["lease_owner"], r["attempt"]),
                    decide(
                        attempt=r["attempt"],
                        max_attempts=r["max_attempts"],
                        outcome=LeaseExpired(r["lease_owner"], r["lease_expires_at"]),
                        now=clock,
                        backoff=backoff,
                    ),
                )
                for r in rows
            ]
            applied = await self.finish_many(changes, now=clock, conn=conn)
        by_id = {r["id"]: r for r in rows}
        decided = dict(changes)
        reaped = [
            Reaped(
                lease.job_id,
                lease.owner,
                state,
                by_id[lease.job_id]["queue"],
                by_id[lease.job_id]["kind"],
                outcome_label(state, decided[lease].event),
            )
            for lease, state in applied.items()
        ]
        for r in reaped:
            log.info("job.reaped", job_id=r.job_id, owner=r.owner, state=r.state.value)
        return reaped

    async def rotate_ready(self) -> Rotation:
        """One step of keeping `job_ready`'s dead rows bounded (`jobs.ready`): returns what
        was done. Safe to call from any number of workers at once."""
        q = self.settings

        def decide_with(rows: int | None) -> Rotation:
            return rotation(
                *sizes,
                rows,
                held_s=state["held_s"],
                rotate_rows=q.ready_rotate_rows,
                move_rows=q.ready_move_rows,
                held_after_s=q.ready_rotate_held_s,
            )

        async with self.pool.acquire() as conn:
            state = await conn.fetchrow(sql.READY_STATE)
            assert state is not None
            current = state["current"]
            other = 1 - current
            sizes = (state[f"bytes_{current}"], state[f"bytes_{other}"])
            step = decide_with(None)
            if step is Rotation.COUNT:
                limit = max(q.ready_move_rows, sizes[1] // ROW_BYTES) + 1
                step = decide_with(await conn.fetchval(sql.ready_rows(other), limit))
            if step is Rotation.MOVE:
                async with conn.transaction():
                    await conn.execute(sql.HOT_PLANNER_LOCAL)  # the index, backwards
                    moved = await conn.fetchrow(sql.move_ready(other, current), MOVE_BATCH)
                assert moved is not None
                log.debug("queue.ready_moved", moved=moved["moved"], kept=moved["kept"])
                if await conn.fetchval(sql.ready_rows(other), 1):
                    return Rotation.MOVE  # more to move, or rows being claimed: next round
                step = decide_with(0)
            if step in (Rotation.EMPTY, Rotation.ROTATE):
                made_current = step is Rotation.ROTATE
                if await self._empty_ready(conn, other, make_current=made_current):
                    return step
            return Rotation.WAIT

    @staticmethod
    async def _empty_ready(conn: asyncpg.Connection, half: int, *, make_current: bool) -> bool:
        """TRUNCATE `half` if it is empty under its lock (then, if asked, make it current)."""
        timeout, lock, check, truncate = sql.empty_ready(half)
        try:
            async with conn.transaction():
                if not await conn.fetchval(sql.READY_ROTATION_LOCK):
                    return False  # another worker is rotating
                await conn.execute(timeout)
                await conn.execute(lock)
                if not await conn.fetchval(check):
                    return False  # a row arrived since it was counted
                await conn.execute(truncate)
                if make_current:
                    await conn.fetchval(sql.SET_CURRENT_HALF, half)
        except asyncpg.LockNotAvailableError:
            return False  # claims or a long transaction hold the half: next round
        return True

    async def report_progress(
        self, lease: Lease, percent: int, message: str | None = None, *, now: datetime | None = None
    ) -> bool:
        """Record progress (0–100) for a job we hold; False when the lease is gone."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress is a percentage from 0 to 100, not {percent}")
        row = await self.pool.fetchrow(
            sql.REPORT_PROGRESS,
            lease.job_id,
            lease.owner,
            lease.attempt,
            percent,
            message,
            self.settings.progress_event_interval_s,
            now,
        )
        assert row is not None
        return bool(row["applied"])

    # -- operators' statements -------------------------------------------------------------

    async def cancel(
        self,
        job_id: int,
        *,
        owner: str | None = None,
        by: str = "system",
        now: datetime | None = None,
    ) -> CancelResult:
        """Cancel a queued job now, or ask a running job's worker to stop it.

        `owner` restricts the operation to that principal's jobs (None: any job).
        Finished jobs are left as they are and reported with their state.
        """
        results = await self.cancel_many([job_id], owner=owner, by=by, now=now)
        if not results:
            raise JobNotFound(job_id)
        return results[0]

    async def cancel_many(
        self,
        job_ids: Sequence[int],
        *,
        owner: str | None = None,
        by: str = "system",
        now: datetime | None = None,
    ) -> list[CancelResult]:
        """`cancel` for many jobs in one statement: a result per job found (in id order),
        none for an id that does not exist or is not `owner`'s."""
        rows = await self.pool.fetch(sql.CANCEL, list(job_ids), owner, by, now)
        results = [
            CancelResult(r["id"], JobState(r["previous"]), JobState(r["state"])) for r in rows
        ]
        parents = [  # what waited for a job cancelled now is cancelled too
            r["id"]
            for r, result in zip(rows, results, strict=True)
            if r["has_dependants"]
            and result.state is JobState.CANCELLED
            and not result.previous.is_terminal
        ]
        if parents:
            await self.decide_waiting(parents=parents)
        return results

    async def retry(
        self,
        job_id: int,
        *,
        owner: str | None = None,
        by: str = "system",
        budget: int = DEFAULT_MAX_ATTEMPTS,
        now: datetime | None = None,
    ) -> None:
        """A dead or cancelled job back to queued with `budget` more attempts."""
        where, params = RetryFilter(states=REPLAYABLE_STATES, owner=owner, ids=[job_id]).where(
            first_param=4
        )
        ids = await self._retry(where, params, by, budget, now)
        if not ids:
            job = await self.get(job_id, owner=owner)  # raises JobNotFound
            raise InvalidTransition(job_id, job.state.value, "retry")

    async def retry_many(
        self,
        where: RetryFilter,
        *,
        by: str = "system",
        budget: int = DEFAULT_MAX_ATTEMPTS,
        now: datetime | None = None,
    ) -> list[int]:
        """Replay every finished job the filter matches; returns their ids."""
        clause, params = where.where(first_param=4)
        return await self._retry(clause, params, by, budget, now)

    async def count_retryable(self, where: RetryFilter) -> int:
        """How many finished jobs `retry_many` with this filter would replay now."""
        clause, params = where.where(first_param=1)
        count = await self.pool.fetchval(sql.COUNT_RETRYABLE.format(where=clause), *params)
        return cast(int, count)

    async def _retry(
        self, where: str, params: list[Any], by: str, budget: int, now: datetime | None
    ) -> list[int]:
        if budget < 1:
            raise ValueError("a retry needs a budget of at least one attempt")
        row = await self.pool.fetchrow(sql.RETRY.format(where=where), budget, by, now, *params)
        assert row is not None
        return list(row["ids"] or [])

    async def prune(
        self, older_than: Mapping[JobState, timedelta], *, now: datetime | None = None
    ) -> dict[JobState, int]:
        """Delete finished jobs (and their events) older than the cutoff for their state."""
        clock = now or await self._now()
        deleted: dict[JobState, int] = {}
        for state, age in older_than.items():
            if not state.is_terminal:
                raise ValueError(f"only finished jobs are pruned, not {state.value} ones")
            total = 0
            while True:
                status = await self.pool.execute(
                    sql.PRUNE, state.value, clock - age, self.settings.prune_batch
                )
                n = int(status.rsplit(" ", 1)[-1])
                total += n
                if n < self.settings.prune_batch:
                    break
            deleted[state] = total
            if total:
                log.info("job.pruned", state=state.value, count=total)
        return deleted

    # -- workers ---------------------------------------------------------------------------

    async def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        queues: Sequence[str],
        concurrency: int,
        *,
        version: str = "",
        kinds: Sequence[Mapping[str, Any]] = (),
        jobs_done: int = 0,
    ) -> None:
        """The worker's row: what it claims from, the Conveyor version it runs, the kinds it
        runs (`{"kind", "timeout_s", "cpu_bound"}` each) and the jobs it finished that no
        heartbeat counted yet. Registering again (the row was pruned) adds `jobs_done`."""
        await self.pool.execute(
            sql.REGISTER_WORKER,
            worker_id,
            host,
            pid,
            list(queues),
            concurrency,
            version,
            _encode([dict(k) for k in kinds]),
            jobs_done,
        )

    async def worker_heartbeat(self, worker_id: str, jobs_done: int = 0) -> bool:
        """Keep the row fresh and add the jobs finished since the last heartbeat. False when
        the row is gone (pruned during an outage): register again (nothing was added)."""
        status = await self.pool.execute(sql.WORKER_HEARTBEAT, worker_id, jobs_done)
        return bool(status.endswith(" 1"))

    async def unregister_worker(self, worker_id: str) -> None:
        await self.pool.execute(sql.UNREGISTER_WORKER, worker_id)

    async def prune_workers(self, silent_for_s: float, *, now: datetime | None = None) -> int:
        status = await self.pool.execute(sql.PRUNE_WORKERS, silent_for_s, now)
        return int(status.rsplit(" ", 1)[-1])

    # -- job_stats ---------------------------------------------------------------------------

    async def add_stats(self, counts: Mapping[Key, Counts]) -> None:
        """Add a worker's tally (`jobs.metrics.Tally.take`) to the running totals."""
        if not counts:
            return
        keys = list(counts)
        await self.pool.execute(
            sql.ADD_STATS,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [counts[k].finished for k in keys],
            [counts[k].duration_sum_s for k in keys],
            [n for k in keys for n in counts[k].buckets],
            len(DURATION_BUCKETS_S) + 1,
        )

    async def job_stats(self) -> dict[Key, Counts]:
        rows = await self.pool.fetch(sql.JOB_STATS)
        return {
            (r["queue"], r["kind"], r["outcome"]): Counts(
                r["finished"], r["duration_sum_s"], list(r["duration_buckets"])
            )
            for r in rows
        }

    # -- job_minute and queue_depth ----------------------------------------------------------

    async def add_minutes(self, minutes: Mapping[MinuteKey, MinuteCounts]) -> None:
        """Add a worker's per-minute tally (`jobs.metrics.Tally.take_minutes`) to
        `job_minute`: one statement for every row."""
        if not minutes:
            return
        keys = list(minutes)
        rows = [minutes[k] for k in keys]
        await self.pool.execute(
            sql.ADD_MINUTES,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [m.finished for m in rows],
            [m.wait_sum_s for m in rows],
            [n for m in rows for n in m.wait_buckets],
            [m.run_sum_s for m in rows],
            [n for m in rows for n in m.run_buckets],
            len(DURATION_BUCKETS_S) + 1,
        )

    async def sample_depth(self, *, now: datetime | None = None) -> DepthSample:
        """Write each queue's queued and running counts for the current minute, unless
        another call (any worker's) did already. Cheap when it did: one insert that finds
        the minute's marker row, no count."""
        row = await self.pool.fetchrow(sql.SAMPLE_DEPTH, now)
        assert row is not None
        return DepthSample(row["sampled"], row["queues"], row["next_minute_in_s"])

    async def prune_aggregates(
        self, *, older_than_days: float = 8, limit: int = 10_000, now: datetime | None = None
    ) -> int:
        """Delete `job_minute`, `job_hour` and `queue_depth` rows older than
        `older_than_days`, at most `limit` of each per call; how many went."""
        done = 0
        for statement in (sql.PRUNE_JOB_MINUTE, sql.PRUNE_JOB_HOUR, sql.PRUNE_QUEUE_DEPTH):
            status = await self.pool.execute(statement, older_than_days, limit, now)
            done += int(status.rsplit(" ", 1)[-1])
        return done

    async def kind_totals(self, since: datetime) -> list[dict[str, Any]]:
        """Per (kind, outcome) since the minute `since`: finished, and the wait and run
        histograms summed (per-bucket counts). Reads `job_minute` only."""
        return [dict(r) for r in await self.pool.fetch(sql.KIND_TOTALS, since)]

    async def kind_series(
        self, kind: str, since: datetime, bucket_minutes: int
    ) -> list[dict[str, Any]]:
        """One kind's figures per (bucket, outcome) since `since`, in buckets of
        `bucket_minutes` (starts as `jobs.metrics.bucket_start`); by the hour (60) from
        `job_hour`."""
        statement = sql.KIND_SERIES_HOURLY if bucket_minutes == 60 else sql.KIND_SERIES
        return [dict(r) for r in await self.pool.fetch(statement, kind, since, bucket_minutes)]

    async def depth_series(self, since: datetime, bucket_minutes: int) -> list[dict[str, Any]]:
        """Per (bucket, queue) since `since`: the most queued and running of its samples;
        the marker rows (queue `sql.DEPTH_MARKER`) say which buckets were sampled."""
        return [dict(r) for r in await self.pool.fetch(sql.DEPTH_SERIES, since, bucket_minutes)]

    async def now(self) -> datetime:
        """The database's clock, the one every worker's claim and every window here uses."""
        return await self._now()

    # -- reads -----------------------------------------------------------------------------

    async def get(self, job_id: int, *, owner: str | None = None) -> Job:
        row = await self.pool.fetchrow(sql.GET_JOB, job_id, owner)
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    async def list_jobs(
        self,
        where: JobFilter,
        *,
        before_id: int | None = None,
        limit: int = 50,
        brief: bool = False,
    ) -> JobListing:
        """Newest first, keyset-paginated on id (`before_id` = the `next_before` of the
        previous page): a page costs the same at the millionth job as at the first. A text
        search reads `SEARCH_SPAN` ids per call and a listing by kind or queue `SCAN_SPAN`,
        so that a rare match never scans the table: such a page may hold fewer than `limit`
        jobs and still have a `next_before`.
        `brief` leaves out payloads and results and keeps only the last error, without its
        traceback."""
        params: list[Any] = []
        clauses = where.where(params)
        lowest: int | None = None
        window: int | None = None
        if where.search_id is None and (where.search_text or where.kinds or where.queues):
            span = await self.pool.fetchrow(sql.JOB_ID_SPAN)
            if span is None or span["highest"] is None:
                return JobListing([], None)
            lowest = span["lowest"]
            top = span["highest"] + 1 if before_id is None else min(before_id, span["highest"] + 1)
            window = max(lowest, top - (SEARCH_SPAN if where.search_text else SCAN_SPAN))
            params.append(window)
            clauses.append(f"id >= ${len(params)}::bigint")
        if before_id is not None:
            params.append(before_id)
            clauses.append(f"id < ${len(params)}::bigint")
        params.append(limit + 1)
        statement = sql.LIST_JOBS.format(
            columns=sql.BRIEF_COLUMNS if brief else "*",
            where=" AND ".join(clauses) or "true",
            limit=len(params),
        )
        rows = await self._custom_planned(statement, params)
        jobs = [Job.from_row(r) for r in rows[:limit]]
        if len(rows) > limit:
            return JobListing(jobs, jobs[-1].id)
        if window is not None and lowest is not None and window > lowest:
            return JobListing(jobs, window)
        return JobListing(jobs, None)

    async def count_jobs(self, where: JobFilter, *, cap: int = COUNT_CAP) -> dict[BrowseState, int]:
        """How many jobs the filter matches in each state (its `states` and `search` aside),
        each counted up to `cap` + 1: a count over `cap` means "more than `cap`", and
        costs no more than reading that many index entries, however big `job` is."""
        params: list[Any] = []
        clauses = dataclasses.replace(where, states=(), search=None).where(params)
        params.append(cap + 1)
        parts = [
            sql.COUNT_IN_STATE.format(
                state=state.value,
                where=" AND ".join([_state_clause(state), *clauses]),
                # an owner's rows come from its own index; anyone's from job_finished_idx
                order=sql.COUNT_FINISHED_ORDER if state in _FINISHED and not where.owner else "",
                cap=len(params),
            )
            for state in BrowseState
        ]
        rows = await self._custom_planned(" UNION ALL ".join(parts), params)
        return {BrowseState(r["state"]): r["n"] for r in rows}

    async def _custom_planned(self, statement: str, params: list[Any]) -> list[asyncpg.Record]:
        """`statement` planned for these values (`sql.CUSTOM_PLANS_LOCAL`)."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(sql.CUSTOM_PLANS_LOCAL)
            return cast(list[asyncpg.Record], await conn.fetch(statement, *params))

    async def states_of(self, job_ids: Sequence[int], *, owner: str | None) -> dict[int, JobState]:
        """The state of each of these jobs that exists (and is `owner`'s, unless None)."""
        if not job_ids:
            return {}
        rows = await self.pool.fetch(sql.STATES_OF, list(job_ids), owner)
        return {r["id"]: JobState(r["state"]) for r in rows}

    async def delete_jobs(self, job_ids: Sequence[int], *, by: str) -> list[int]:
        """Delete finished jobs (their events and dependency rows go with them) and record
        who deleted which in `audit_event`, in one statement; unfinished ones are left (cancel
        them first). Returns the ids deleted."""
        row = await self.pool.fetchrow(sql.DELETE_JOBS, sorted(set(job_ids)), by)
        assert row is not None
        return list(row["ids"] or [])

    async def audit_events(
        self, *, before_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Operators' destructive actions, newest first."""
        rows = await self.pool.fetch(sql.AUDIT_EVENTS, before_id, limit)
        return [dict(r) for r in rows]

    async def active_jobs(
        self, *, owner: str | None, recent_s: float, limit: int = 500
    ) -> list[Job]:
        rows = await self.pool.fetch(sql.ACTIVE_JOBS, owner, recent_s, limit)
        return [Job.from_row(r) for r in rows]

    async def control_queue(
        self,
        queue: str,
        *,
        by: str,
        paused: bool | None = None,
        concurrency: int | Keep | None = KEEP,
    ) -> dict[str, Any]:
        """Pause or resume a queue, or set or lift (None) its concurrency limit; what is not
        given keeps its value. Applies to the next claim of every worker; the queue's
        workers are woken."""
        row = await self.pool.fetchrow(
            sql.SET_QUEUE_CONTROL,
            queue,
            paused,
            None if concurrency is KEEP else concurrency,
            concurrency is not KEEP,
            by,
        )
        assert row is not None
        log.info(
            "queue.controlled",
            queue=queue,
            paused=row["paused"],
            concurrency=row["concurrency"],
            by=by,
        )
        return {k: row[k] for k in ("queue", "paused", "concurrency", "updated_at", "updated_by")}

    async def control_kind(
        self,
        kind: str,
        *,
        by: str,
        concurrency: int | Keep | None = KEEP,
        owner_concurrency: int | Keep | None = KEEP,
        rate: RateLimit | Keep | None = KEEP,
    ) -> dict[str, Any]:
        """Set or lift (None) how many of a kind's jobs run at once over every worker, how
        many per owner, and how many start in a window (`rate`); what is not given keeps its
        value. The kind's ready jobs move to its lane, and the workers of their queues are
        woken; every worker claims by the new limits within a second (they read the limited
        kinds once a second)."""
        new_rate = rate if isinstance(rate, RateLimit) else None
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                sql.SET_KIND_CONTROL,
                kind,
                None if concurrency is KEEP else concurrency,
                concurrency is not KEEP,
                None if owner_concurrency is KEEP else owner_concurrency,
                owner_concurrency is not KEEP,
                by,
                rate is not KEEP,
                new_rate and new_rate.allowed,
                new_rate and new_rate.period_s,
                new_rate and new_rate.partition,
            )
            assert row is not None
            async with conn.transaction():
                await conn.execute(sql.HOT_PLANNER_LOCAL)  # each ready row's job by its key
                routed = await conn.fetchrow(sql.ROUTE_KIND, kind, row["lane"])
            assert routed is not None
            if routed["queues"]:
                await conn.execute(sql.NOTIFY_QUEUES, list(routed["queues"]))
        log.info(
            "kind.controlled",
            kind=kind,
            concurrency=row["concurrency"],
            owner_concurrency=row["owner_concurrency"],
            rate_allowed=row["rate_allowed"],
            rate_period_s=row["rate_period_s"],
            rate_partition=row["rate_partition"],
            routed=routed["routed"],
            by=by,
        )
        return dict(row)

    async def kind_controls(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.KIND_CONTROLS)]

    async def queue_controls(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.QUEUE_CONTROLS)]

    async def set_share(self, owner: str, weight: float, *, by: str) -> dict[str, Any]:
        """An owner's fair-share weight (1 without one): its jobs readied from now on take
        turns `weight` times as often as a weight-1 owner's."""
        row = await self.pool.fetchrow(sql.SET_SHARE, owner, weight, by)
        assert row is not None
        log.info("share.set", owner=owner, weight=weight, by=by)
        return dict(row)

    async def clear_share(self, owner: str, *, by: str) -> bool:
        """The owner goes back to weight 1. False: it had no weight of its own."""
        cleared = await self.pool.fetchval(sql.CLEAR_SHARE, owner) is not None
        if cleared:
            log.info("share.cleared", owner=owner, by=by)
        return cleared

    async def shares(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.SHARES)]

    async def queue_stats(self, *, owner: str | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.QUEUE_STATS, owner)]

    async def throughput(self, *, owner: str | None, minutes: int) -> list[dict[str, Any]]:
        """Finished jobs per minute (succeeded, dead, cancelled) over the last `minutes`
        minutes, oldest first, the current one included, minutes with none as zeros."""
        return [dict(r) for r in await self.pool.fetch(sql.THROUGHPUT, owner, minutes)]

    async def live_workers(self) -> list[dict[str, Any]]:
        """Every worker with a row, oldest first: its own figures, its heartbeat's age (by
        the database's clock) and how many jobs it holds."""
        return [dict(r) for r in await self.pool.fetch(sql.LIVE_WORKERS, None)]

    async def worker(self, worker_id: str, *, jobs: int = 1000) -> dict[str, Any] | None:
        """One live worker as `live_workers` gives it, with `jobs`: those it holds now (at
        most `jobs` of them, oldest start first). None when no such worker has a row. One
        snapshot, so its `running` count and its `jobs` agree."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(sql.LIVE_WORKERS, worker_id)
            if row is None:
                return None
            held = await conn.fetch(sql.WORKER_JOBS, worker_id, jobs)
        return {**dict(row), "jobs": [dict(r) for r in held]}

    async def kind_catalogue(self) -> dict[str, dict[str, Any]]:
        """Per kind that a live worker runs or that finished jobs in the last 24 hours: the
        defaults its newest worker published (`timeout_s`, `cpu_bound`; None when no live
        worker runs it), how many live workers run it, and its jobs succeeded, dead and
        cancelled over the last 24 hours (from `job_minute` and `job_hour`)."""
        return {r["kind"]: dict(r) for r in await self.pool.fetch(sql.KIND_CATALOGUE)}

    async def schema_revision(self) -> str | None:
        """The migration the database's schema is at (alembic's), None before any."""
        revision: str | None = await self.pool.fetchval(sql.SCHEMA_REVISION)
        return revision

    async def events(self, job_id: int) -> list[JobEvent]:
        rows = await self.pool.fetch(sql.JOB_EVENTS, job_id)
        return [JobEvent(r["job_id"], r["at"], r["type"], r["data"]) for r in rows]

    async def _now(self) -> datetime:
        return cast(datetime, await self.pool.fetchval(sql.NOW))
