"""API keys: created by `conveyor keys create`, shown once, stored as a SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

KEY_PREFIX = "cvk_"
ROLES = ("admin", "user")


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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(db: asyncpg.Connection | asyncpg.Pool, name: str, role: str) -> str:
    """A new key for `name`; returns the key itself, which is never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO api_key (name, role, key_hash) VALUES ($1, $2, $3)", name, role, hash_key(key)
    )
    return key


async def list_keys(db: asyncpg.Connection | asyncpg.Pool) -> list[KeyInfo]:
    rows = await db.fetch("SELECT name, role, created_at, revoked_at FROM api_key ORDER BY name")
    return [KeyInfo(r["name"], r["role"], r["created_at"], r["revoked_at"]) for r in rows]


async def revoke_key(db: asyncpg.Connection | asyncpg.Pool, name: str) -> bool:
    status = await db.execute(
        "UPDATE api_key SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
    )
    return str(status).endswith(" 1")


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
