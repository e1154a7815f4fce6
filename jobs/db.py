"""Connections: one DATABASE_URL, spelled the way each client wants it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from jobs.settings import DatabaseSettings

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
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
# custom. Planning each execution costs about 0.2 ms, so plan with the real parameters.
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


async def create_pool(
    url: str, settings: DatabaseSettings | None = None, **kw: Any
) -> asyncpg.Pool:
    s = settings or DatabaseSettings()
    kw.setdefault("server_settings", SERVER_SETTINGS)
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=min(s.db_pool_min, s.db_pool_max),
        max_size=s.db_pool_max,
        command_timeout=s.db_command_timeout_s,
        init=_init_connection,
        reset=_keep_session,
        **kw,
    )
    return pool
