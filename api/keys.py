"""API keys: created by `conveyor keys create` or `POST /v1/keys`, shown once, stored as a
SHA-256; revoked by `conveyor keys revoke` or `DELETE /v1/keys/NAME`.

A key's name is its principal (`key:NAME` owns what it submits), so a name is never given
to a second key: the table's `name` is unique, revoked keys included. Creating and revoking
write an `audit_event` in the same statement; revoking also notifies `KEYS_CHANNEL`, on
which every API process drops the key from its cache at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

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
class Principal:
    """Who is calling, and the owner of what it submits.

    API keys and JWT subjects are two namespaces, kept apart in `owner`: `key:NAME` for the
    key named NAME, `jwt:ISSUER:SUB` for a token's subject. A token whose `sub` is a key's
    name is another principal, and so is a key created later with a user's name. The cron
    scheduler's jobs belong to `system` (`jobs.model.SYSTEM_OWNER`), which no caller is.
    """

    source: Literal["key", "jwt"]
    name: str
    """The key's name, or the token's `sub`."""
    role: str
    issuer: str | None = None
    """The token's `iss` (JWTs only)."""
    expires_at: float | None = None
    """When the credential stops being valid (epoch seconds, leeway included): a JWT's
    `exp`; None for keys, which last until revoked."""

    @classmethod
    def key(cls, name: str, role: str) -> Principal:
        return cls("key", name, role)

    @property
    def owner(self) -> str:
        if self.source == "key":
            return f"key:{self.name}"
        return f"jwt:{self.issuer}:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner_filter(self) -> str | None:
        """The owner to scope job queries to: None (everything) for admins."""
        return None if self.is_admin else self.owner


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


_CREATE = """
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

_REVOKE = f"""
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


def _info(row: asyncpg.Record) -> KeyInfo:
    return KeyInfo(row["name"], row["role"], row["created_at"], row["revoked_at"])


async def issue_key(
    db: asyncpg.Connection | asyncpg.Pool, name: str, role: str, *, by: str | None = None
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
    row = await db.fetchrow(_CREATE, name, role, hash_key(key), by)
    if row is None:
        taken = await find_key(db, name)
        raise KeyNameTaken(name, taken.revoked_at if taken else None)
    return _info(row), key


async def create_key(
    db: asyncpg.Connection | asyncpg.Pool, name: str, role: str, *, by: str | None = None
) -> str:
    """A new key for `name`; returns the key itself, which is never stored."""
    return (await issue_key(db, name, role, by=by))[1]


async def list_keys(db: asyncpg.Connection | asyncpg.Pool) -> list[KeyInfo]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM api_key ORDER BY name")
    return [_info(r) for r in rows]


async def find_key(db: asyncpg.Connection | asyncpg.Pool, name: str) -> KeyInfo | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM api_key WHERE name = $1", name)
    return _info(row) if row else None


async def revoke_key(
    db: asyncpg.Connection | asyncpg.Pool, name: str, *, by: str | None = None
) -> KeyInfo | None:
    """Revoke the live key named `name`: the key as it is now, or None when there is no
    live key by that name. In one statement, `by` is recorded as the `key.revoked` audit
    event's actor (None: none) and every API process is told to forget the key (its next
    request answers 401 in each, not after the key cache's interval)."""
    row = await db.fetchrow(_REVOKE, name, by)
    return _info(row) if row else None


async def authenticate(db: asyncpg.Connection | asyncpg.Pool, key_hash: str) -> Principal | None:
    """The live key with this hash (`hash_key`), if any."""
    row = await db.fetchrow(
        "SELECT name, role FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return Principal.key(row["name"], row["role"]) if row else None


async def stream_secret(db: asyncpg.Connection | asyncpg.Pool) -> bytes:
    """The key stream tokens are signed with (migration 0007 made it)."""
    value = await db.fetchval("SELECT value FROM api_secret WHERE name = 'stream_token'")
    if value is None:
        raise RuntimeError("no stream-token secret in api_secret: run `conveyor migrate`")
    return bytes(value)
