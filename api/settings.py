"""Settings of the API process, read from the environment (CONVEYOR_API_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_API_", extra="ignore")

    stream_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="a stream re-reads its job at least this often, notification or not (s)",
    )
    stream_keepalive_s: float = Field(
        default=15.0, gt=0, description="a stream sends a comment when idle this long (s)"
    )
    stream_retry_ms: int = Field(
        default=2000, ge=0, description="how long a browser waits before reconnecting (ms)"
    )
