"""Connections: one DATABASE_URL, spelled the way each client wants it, and the one door
to the database for code outside `jobs`.

`Database` is that door: the pool's four statement calls and a transaction, nothing that
closes or resizes the pool, so a kind's load and save, the area stores (`stores/`) and the
API can run statements but cannot close the pool under the queue. The driver's exceptions
the API maps to answers, the row type and the LISTEN connection are named here too, so the
API imports no asyncpg (an import contract holds it to that).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg

from jobs.backoff import Backoff
from jobs.errors import ConfigurationError
from jobs.logging import get_logger
from jobs.settings import DatabaseSettings

log = get_logger(__name__)
T = TypeVar("T")

Record: TypeAlias = asyncpg.Record
"""A row as the driver returns it: read by column name (`row["id"]`), or `dict(row)`."""
Connection: TypeAlias = asyncpg.Connection
"""One connection: what `Database.transaction` yields and `connect_listener` opens."""

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset: the server restarted or the network blinked
    TimeoutError,
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    # The server went away mid-statement and left the connection's protocol state torn
    # ("cannot switch to state …"); the pool discards such a connection on release.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.TooManyConnectionsError,  # the server is full: wait for a free one
)
"""Errors after which a loop should wait and try again: the database will be back."""

START_HINT = (
    "waiting for PostgreSQL: check that it is up and that DATABASE_URL names its host and port"
)
"""What a process waiting for its database at start tells the operator to check."""

UNAVAILABLE_BACKOFF = Backoff(base_s=0.5, cap_s=10.0, jitter=0.2)
"""Waits between tries while the database is away: 0.5 s doubling to 10 s, spread so that
many processes waiting out one outage do not all knock at once when it ends."""


async def until_available(call: Callable[[], Awaitable[T]], event: str, **fields: Any) -> T:
    """`call()`, tried again after each of `TRANSIENT_ERRORS` until it succeeds, logging
    `event` (with `fields`, the error and the wait) at every failure. Any other error, a
    wrong password or a missing database say, is raised at once: waiting would not mend it."""
    failures = 0
    while True:
        try:
            return await call()
        except TRANSIENT_ERRORS as exc:
            wait_s = UNAVAILABLE_BACKOFF.delay_s(failures)
            failures += 1
            log.warning(event, **fields, error=repr(exc), retry_in_s=round(wait_s, 2))
            await asyncio.sleep(wait_s)


CONSTRAINT_ERRORS: tuple[type[Exception], ...] = (asyncpg.IntegrityConstraintViolationError,)
"""A write the schema's constraints refused (unique, check, foreign key, not null)."""

DATA_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,  # the server's: a NUL in text, a date out of its range
    asyncpg.exceptions._base.DataError,  # the driver's: "invalid input for query argument"
)
"""A value Postgres cannot hold, refused by the server or by the driver before sending it."""


class Queries(Protocol):
    """Anything that runs a statement: a `Database`, a connection (in a transaction of the
    caller's), the store's pool. The area stores' functions take one."""

    async def fetch(self, statement: str, *args: Any) -> list[Record]: ...

    async def fetchrow(self, statement: str, *args: Any) -> Record | None: ...

    async def fetchval(self, statement: str, *args: Any) -> Any: ...

    async def execute(self, statement: str, *args: Any) -> str: ...


class Database:
    """The narrow handle on a pool: run a statement, or several in one transaction.

    Each call borrows a connection for its statement and gives it back. `transaction()`
    yields one connection inside a transaction, for work of several statements, COPY or a
    transaction's advisory lock; it commits when the block ends and rolls back when it
    raises. A connection goes back to the pool without a reset (`_keep_session`): what runs
    here must leave no session state behind (`SET LOCAL`, not `SET`; no LISTEN, no session
    locks — `connect_listener` opens a connection of its own for those)."""

    __slots__ = ("_pool",)

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def fetch(self, statement: str, *args: Any) -> list[Record]:
        rows: list[Record] = await self._pool.fetch(statement, *args)
        return rows

    async def fetchrow(self, statement: str, *args: Any) -> Record | None:
        row: Record | None = await self._pool.fetchrow(statement, *args)
        return row

    async def fetchval(self, statement: str, *args: Any) -> Any:
        return await self._pool.fetchval(statement, *args)

    async def execute(self, statement: str, *args: Any) -> str:
        status: str = await self._pool.execute(statement, *args)
        return status

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn


def asyncpg_dsn(url: str) -> str:
    """asyncpg takes postgresql:// or postgres://, not SQLAlchemy's `+driver` form."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r} (expected postgresql://…)")
    return "postgresql://" + rest if scheme.split("+")[0] in ("postgresql", "postgres") else url


def sqlalchemy_url(url: str) -> str:
    """Alembic runs through SQLAlchemy's asyncpg dialect."""
    return "postgresql+asyncpg://" + asyncpg_dsn(url).partition("://")[2]


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Rows come back with jsonb decoded. Writes pass JSON as text and cast in SQL, so the
    # store's statements also run on a caller's own connection that has no such codec. The
    # binary format (a version byte, then the text) is what lets COPY write jsonb columns.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb, decoder=_unjsonb, schema="pg_catalog", format="binary"
    )


JSONB_VERSION = b"\x01"


class JsonText(str):
    """JSON already encoded, sent as it is: a value that is written many times (a column that
    is the same for every row of a COPY) is encoded once. A plain str is a JSON string."""


def _jsonb(value: object) -> bytes:
    if type(value) is JsonText:
        return JSONB_VERSION + value.encode()
    return JSONB_VERSION + json.dumps(value).encode()


def _unjsonb(data: bytes) -> object:
    return json.loads(data[1:])


# The queue's statements take arrays and a nullable `$now`; Postgres' generic plans for them
# (chosen after five executions of a prepared statement) guess badly at both. Measured on
# 60,000 queued jobs, batches of 100, median round trip: finish 7.2 ms generic vs 2.8 ms
# custom. Planning each execution costs about 0.2 ms, so plan with the real parameters. The
# exception is the claim, finish and heartbeat, whose plans jobs.sql.HOT_PLANNER fixes
# whatever the parameters: those are planned once per connection (see there).
# No JIT: these are short statements, and the plans jobs.sql.HOT_PLANNER fixes carry the
# cost of a disabled scan (10^10 for reading the job_ready_generation sequence) far past
# jit_above_cost: compiling a claim took 1.2 s where running it takes 1 ms.
SERVER_SETTINGS = {
    "plan_cache_mode": "force_custom_plan",
    "jit": "off",
    "application_name": "conveyor",
}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool rolls back an open transaction (asyncpg does that
    before calling this) and nothing more. asyncpg's default reset also sends `SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` — a whole round trip on every
    release, so every statement through the pool cost two. Measured on one worker draining
    no-op jobs, that was a tenth of its time. Nothing here leaves session state behind; code
    that borrows a pool connection must not either (use SET LOCAL inside a transaction, and
    a connection of its own for LISTEN or session locks)."""


POOLED_SETTINGS = {"application_name": "conveyor"}
"""What a connection through a transaction pooler sends: PgBouncer refuses a startup
parameter it does not track, and a session setting would stay on a server connection
that other clients get next. The statements that need the planner settings set them with
SET LOCAL inside their transaction; `jit = off` for the rest is the role's to set
(docs/operations.md, "Behind PgBouncer")."""


class PoolerRefused(ConfigurationError):
    """DATABASE_URL leads to a pooler that refused the session settings: say what to set."""


def pooler_refusal(exc: BaseException) -> PoolerRefused | None:
    """The error to raise instead of `exc` when it is a pooler refusing a startup parameter
    (PgBouncer: "unsupported startup parameter: plan_cache_mode"), else None."""
    text = str(exc)
    if "unsupported startup parameter" not in text:
        return None
    return PoolerRefused(
        f"DATABASE_URL leads to a connection pooler ({text}): set DB_POOLER=transaction, "
        "and DATABASE_DIRECT_URL to Postgres itself (not the pooler) for LISTEN and "
        "`conveyor migrate`; docs/operations.md, 'Behind PgBouncer', says what each changes"
    )


async def create_pool(
    url: str, settings: DatabaseSettings | None = None, **kw: Any
) -> asyncpg.Pool:
    s = settings or DatabaseSettings()
    if s.pooled:
        # No named prepared statements: the next transaction may run on another server
        # connection, which never saw them. An unnamed statement is planned with its
        # parameters, as force_custom_plan makes the others.
        kw.setdefault("statement_cache_size", 0)
    kw.setdefault("server_settings", POOLED_SETTINGS if s.pooled else SERVER_SETTINGS)
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=min(s.db_pool_min, s.db_pool_max),
            max_size=s.db_pool_max,
            command_timeout=s.db_command_timeout_s,
            init=_init_connection,
            reset=_keep_session,
            **kw,
        )
    except Exception as exc:
        refusal = pooler_refusal(exc)
        if refusal is not None:
            raise refusal from None
        raise
    return pool


async def connect_listener(url: str) -> Connection:
    """A connection of its own, outside every pool and without the pool's codecs, for
    LISTEN: it holds session state (its listeners) for as long as it lives. The caller
    closes it (`terminate()`)."""
    conn: Connection = await asyncpg.connect(asyncpg_dsn(url))
    return conn


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """A `Database` of one connection for a short command (`conveyor keys`, the default
    schedules `conveyor migrate` creates), closed when the block ends."""
    pool = await create_pool(url, DatabaseSettings(db_pool_min=1, db_pool_max=1))
    try:
        yield Database(pool)
    finally:
        await pool.close()
