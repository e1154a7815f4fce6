"""API keys: created by `conveyor keys create` or `POST /v1/keys`, shown once, stored as a
SHA-256; revoked by `conveyor keys revoke` or `DELETE /v1/keys/NAME`.

A key's name is its principal (`key:NAME` owns what it submits), so a name is never given
to a second key: the table's `name` is unique, revoked keys included. Creating and revoking
write an `audit_event` in the same statement; revoking also notifies `KEYS_CHANNEL`, on
which every API process drops the key from its cache at once.

The statements and `KeyStore`, which runs them over a `jobs.db.Database`; the functions
beside it take anything that runs a statement (a connection in a transaction of the
caller's, as the tests and `conveyor keys` have), so a key is made the same way everywhere.
Who a key is, as a caller (`Principal`), is the API's (`api.keys`): this module answers
with a key's name and role.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from jobs.db import Database, Queries, Record

KEY_PREFIX = "cvk_"
ROLES = ("admin", "user")
NAME_MAX = 128
"""The table's `api_key_name_length`."""
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
"""As kinds' and queues' names (`api.schemas.NAME`): a name is part of `key:NAME`, shown in
listings and typed in commands, so no spaces, slashes or quotes."""
KEYS_CHANNEL = "conveyor_keys"
"""NOTIFY channel: the payload is the name of a key just revoked."""
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class KeyNameTaken(ValueError):
    """A key, live or revoked, already has this name."""

    def __init__(self, name: str, revoked_at: datetime | None) -> None:
        self.name, self.revoked_at = name, revoked_at
        held = (
            f"a key named {name!r} was revoked on {revoked_at:%Y-%m-%d %H:%M} UTC"
            if revoked_at is not None
            else f"a key named {name!r} already exists"
        )
        super().__init__(
            f"{held}: pick another name (a name is never given to a second key, even a "
            f"revoked one's, so key:{name} on jobs always means one key)"
        )


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a key, or None when it can."""
    if not 1 <= len(name) <= NAME_MAX:
        return f"a key's name has 1 to {NAME_MAX} characters, not {len(name)}"
    if not _NAME.fullmatch(name):
        bad = "".join(sorted({c for c in name if not _NAME.fullmatch(c)}))
        return (
            f"a key's name may hold letters, digits and _ . : - only, not {bad!r}"
            if bad.isprintable()
            else "a key's name may hold letters, digits and _ . : - only"
        )
    return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


CREATE = """
WITH made AS (
    INSERT INTO api_key (name, role, key_hash) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO NOTHING
    RETURNING name, role, created_at, revoked_at
), audited AS (
    INSERT INTO audit_event (actor, action, data)
    SELECT $4, 'key.created', jsonb_build_object('name', name, 'role', role) FROM made
    WHERE $4::text IS NOT NULL
)
SELECT * FROM made
"""

REVOKE = f"""
WITH revoked AS (
    UPDATE api_key SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
    RETURNING name, role, created_at, revoked_at
), audited AS (
    INSERT INTO audit_event (actor, action, data)
    SELECT $2, 'key.revoked', jsonb_build_object('name', name, 'role', role) FROM revoked
    WHERE $2::text IS NOT NULL
)
SELECT revoked.*, pg_notify('{KEYS_CHANNEL}', name)::text AS notified FROM revoked
"""

_COLUMNS = "name, role, created_at, revoked_at"

LIST = f"SELECT {_COLUMNS} FROM api_key ORDER BY name"

FIND = f"SELECT {_COLUMNS} FROM api_key WHERE name = $1"

AUTHENTICATE = "SELECT name, role FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL"

LIVE_ROLE = "SELECT role FROM api_key WHERE name = $1 AND revoked_at IS NULL"
"""A stream opened with a stream token checks its key is still live with the same role."""

SIGNING_KEY = "SELECT value FROM api_secret WHERE name = 'stream_token'"
"""The key stream tokens are signed with."""


def _info(row: Record) -> KeyInfo:
    return KeyInfo(row["name"], row["role"], row["created_at"], row["revoked_at"])


async def issue_key(
    db: Queries, name: str, role: str, *, by: str | None = None
) -> tuple[KeyInfo, str]:
    """A new key named `name`, and the key itself, which is never stored. `by` (who asked)
    is recorded as the `key.created` audit event's actor, in the same statement; None
    records none (the tests' and `conveyor dev`'s own keys).

    ValueError for a bad name or role; KeyNameTaken (a ValueError) for a name in use."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await db.fetchrow(CREATE, name, role, hash_key(key), by)
    if row is None:
        taken = await find_key(db, name)
        raise KeyNameTaken(name, taken.revoked_at if taken else None)
    return _info(row), key


async def create_key(db: Queries, name: str, role: str, *, by: str | None = None) -> str:
    """A new key for `name`; returns the key itself, which is never stored."""
    return (await issue_key(db, name, role, by=by))[1]


async def list_keys(db: Queries) -> list[KeyInfo]:
    rows = await db.fetch(LIST)
    return [_info(r) for r in rows]


async def find_key(db: Queries, name: str) -> KeyInfo | None:
    row = await db.fetchrow(FIND, name)
    return _info(row) if row else None


async def revoke_key(db: Queries, name: str, *, by: str | None = None) -> KeyInfo | None:
    """Revoke the live key named `name`: the key as it is now, or None when there is no
    live key by that name. In one statement, `by` is recorded as the `key.revoked` audit
    event's actor (None: none) and every API process is told to forget the key (its next
    request answers 401 in each, not after the key cache's interval)."""
    row = await db.fetchrow(REVOKE, name, by)
    return _info(row) if row else None


async def authenticate(db: Queries, key_hash: str) -> tuple[str, str] | None:
    """The (name, role) of the live key with this hash (`hash_key`), if any."""
    row = await db.fetchrow(AUTHENTICATE, key_hash)
    return (row["name"], row["role"]) if row else None


async def live_role(db: Queries, name: str) -> str | None:
    """The role of the live key named `name`; None when no live key has the name."""
    role: str | None = await db.fetchval(LIVE_ROLE, name)
    return role


async def stream_secret(db: Queries) -> bytes:
    """The key stream tokens are signed with (migration 0007 made it)."""
    value = await db.fetchval(SIGNING_KEY)
    if value is None:
        raise RuntimeError("no stream-token secret in api_secret: run `conveyor migrate`")
    return bytes(value)


class KeyStore:
    """The api_key and api_secret tables over one `Database` (the API's, `store.db`)."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    async def issue(self, name: str, role: str, *, by: str | None = None) -> tuple[KeyInfo, str]:
        """`issue_key`: the new key's row and the key itself."""
        return await issue_key(self.db, name, role, by=by)

    async def all(self) -> list[KeyInfo]:
        """Every key, live and revoked, by name."""
        return await list_keys(self.db)

    async def find(self, name: str) -> KeyInfo | None:
        return await find_key(self.db, name)

    async def revoke(self, name: str, *, by: str | None = None) -> KeyInfo | None:
        """`revoke_key`: the key as revoked, None when no live key has the name."""
        return await revoke_key(self.db, name, by=by)

    async def authenticate(self, key_hash: str) -> tuple[str, str] | None:
        """(name, role) of the live key with this hash."""
        return await authenticate(self.db, key_hash)

    async def live_role(self, name: str) -> str | None:
        return await live_role(self.db, name)

    async def stream_secret(self) -> bytes:
        return await stream_secret(self.db)
