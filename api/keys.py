"""Who is calling (`Principal`): an API key's name and role, or a JWT's subject.

The keys themselves (their table, names and hashes, the statements that create, list and
revoke them) live in `stores.keys`; this module is the caller as the API's routes see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
