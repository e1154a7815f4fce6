"""Settings of the queue core, read from the environment (pydantic-settings).

Every field has its default and its unit in the name or the description.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobs.backoff import Backoff


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql://user:pass@host:port/db. Unset: `conveyor dev` starts an "
        "embedded cluster.",
    )
    db_pool_min: int = Field(default=1, ge=0, description="connections kept open (count)")
    db_pool_max: int = Field(default=10, ge=1, description="connections at most (count)")
    db_command_timeout_s: float = Field(
        default=60.0, gt=0, description="a statement slower than this fails (seconds)"
    )
    db_pooler: Literal["none", "transaction"] = Field(
        default="none",
        description="`transaction` when DATABASE_URL leads to PgBouncer (or another pooler) "
        "in transaction mode: no prepared statement is kept and no session setting is sent "
        "or left behind, and LISTEN goes through DATABASE_DIRECT_URL",
    )
    database_direct_url: str | None = Field(
        default=None,
        description="Postgres itself, past the pooler (with DB_POOLER=transaction): LISTEN "
        "(workers' wake-ups, the API's streams and key revocations) and `conveyor migrate` "
        "use it. Unset behind a pooler: workers and streams poll, and migrate refuses",
    )

    @property
    def pooled(self) -> bool:
        return self.db_pooler == "transaction"

    def session_url(self, url: str) -> str | None:
        """Where a connection that keeps session state (LISTEN, a migration) goes: Postgres
        itself, or None behind a transaction pooler with no direct URL."""
        if self.database_direct_url:
            return self.database_direct_url
        return None if self.pooled else url


class QueueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    backoff_base_s: float = Field(default=1.0, gt=0, description="first retry delay (seconds)")
    backoff_cap_s: float = Field(default=3600.0, gt=0, description="longest retry delay (s)")
    backoff_jitter: float = Field(
        default=0.2, ge=0, lt=1, description="retry delays spread by ± this fraction"
    )
    progress_event_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="at most one progress event row per job per this interval (seconds); "
        "the job row always holds the latest progress",
    )
    reap_batch: int = Field(default=500, ge=1, description="expired leases returned per reap")
    prune_batch: int = Field(default=5000, ge=1, description="rows deleted per prune statement")
    ready_rotate_rows: int = Field(
        default=4096,
        ge=16,
        description="a half of the claim table (`job_ready`) is emptied and rotated after "
        "taking in about this many jobs (count): the most dead rows a claim walks past while "
        "a long transaction holds back vacuum",
    )
    ready_rotate_held_s: float = Field(
        default=2.0,
        ge=0,
        description="the claim table's halves rotate only while some session has held a "
        "snapshot (and so the vacuum horizon) for this long (seconds)",
    )
    ready_move_rows: int = Field(
        default=10_000,
        ge=0,
        description="at most this many unclaimed jobs (a backlog, jobs due later) are moved "
        "to let a half rotate, unless as many were claimed out of it already (count)",
    )

    def backoff(self) -> Backoff:
        return Backoff(
            base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, jitter=self.backoff_jitter
        )
