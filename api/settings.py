"""Settings of the API process, read from the environment (CONVEYOR_API_*)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_API_", extra="ignore", populate_by_name=True
    )

    app: str | None = Field(
        default=None,
        description="the user's kinds, package.module:attribute (CONVEYOR_APP): validated "
        "and documented beside the built-in ones; give the workers the same",
        validation_alias=AliasChoices("app", "CONVEYOR_APP", "CONVEYOR_API_APP"),
    )

    stream_poll_s: float = Field(
        default=2.0,
        gt=0,
        description="a stream re-reads its job at least this often, notification or not (s)",
    )
    stream_keepalive_s: float = Field(
        default=15.0, gt=0, description="a stream sends a comment when idle this long (s)"
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="a known API key is trusted this long without a lookup; revoking it "
        "clears it at once, so this bounds a key revoked by editing api_key, or while the "
        "API's listener connection was down (s)",
    )
    stream_retry_ms: int = Field(
        default=2000, ge=0, description="how long a browser waits before reconnecting (ms)"
    )
    stream_recheck_s: float = Field(
        default=5.0,
        gt=0,
        description="an open stream checks its credential this often and ends when it no "
        "longer holds (a revoked key, an expired token) (s)",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a connection that has not sent a request's headers this long after "
        "opening (or after its first byte) is closed (s)",
    )
    keepalive_timeout_s: int = Field(
        default=5, ge=1, description="an idle kept-alive connection is closed after (s)"
    )
    max_connections: int | None = Field(
        default=None,
        ge=16,
        description="open connections per server process; unset: the open-file limit less "
        "64. At the cap, a new connection closes the longest-waiting idle one",
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=16,
        description="when set, GET /metrics needs `Authorization: Bearer <this>` "
        "(CONVEYOR_METRICS_TOKEN), as Prometheus' `authorization` setting sends it",
        validation_alias=AliasChoices(
            "metrics_token", "CONVEYOR_METRICS_TOKEN", "CONVEYOR_API_METRICS_TOKEN"
        ),
    )
    stream_secret: str | None = Field(
        default=None,
        min_length=32,
        description="signs stream tokens; unset, the secret migration 0007 stored in the "
        "database (shared by every API process)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="browser origins allowed to call the API (CONVEYOR_CORS_ORIGINS, "
        "comma-separated, e.g. https://app.example.com); none by default",
        validation_alias=AliasChoices(
            "cors_origins", "CONVEYOR_CORS_ORIGINS", "CONVEYOR_API_CORS_ORIGINS"
        ),
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="a larger request body answers 413 (bytes)"
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="a body still arriving this long after its headers answers 408 (s)",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            for origin in value:
                if not isinstance(origin, str) or not ORIGIN.fullmatch(origin):
                    raise ValueError(
                        f"CONVEYOR_CORS_ORIGINS: {origin!r} is not an origin like "
                        "https://app.example.com (scheme, host, optional port; no path)"
                    )
        return value


class JwtSettings(BaseSettings):
    """The platform frontend's login tokens. Set JWT_SECRET (HS256) or JWT_JWKS_URL (RS256),
    with JWT_ISSUER and JWT_AUDIENCE; unset, only API keys are accepted."""

    model_config = SettingsConfigDict(env_prefix="JWT_", extra="ignore")

    secret: str | None = Field(default=None, min_length=32, description="HS256 shared secret")
    jwks_url: str | None = Field(default=None, description="RS256 public keys (a JWKS URL)")
    issuer: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the `iss` every token must carry; a user's jobs are owned by `jwt:ISSUER:SUB`",
    )
    audience: str | None = Field(default=None, description="the `aud` every token must name")
    leeway_s: float = Field(default=30.0, ge=0, description="clock skew allowed on exp/nbf (s)")
    jwks_cache_s: float = Field(default=300.0, gt=0, description="JWKS keys kept this long (s)")

    @model_validator(mode="after")
    def _complete(self) -> JwtSettings:
        if self.secret and self.jwks_url:
            raise ValueError("set JWT_SECRET (HS256) or JWT_JWKS_URL (RS256), not both")
        if self.enabled and not (self.issuer and self.audience):
            raise ValueError(
                "JWT_ISSUER and JWT_AUDIENCE are required with JWT_SECRET or JWT_JWKS_URL: "
                "a token from another issuer or meant for another service must not pass"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.jwks_url)
