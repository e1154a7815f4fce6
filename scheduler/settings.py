"""Scheduler settings (CONVEYOR_CRON_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_CRON_", extra="ignore")

    late_s: float = Field(
        default=5.0,
        gt=0,
        description="a fire less late than this is on time and enqueued whatever happens; "
        "later ones count as missed (coalesced or backfilled) (seconds)",
    )
    reload_s: float = Field(
        default=1.0,
        gt=0,
        le=5,
        description="schedules are re-read at least this often, so edits apply within it (s)",
    )
