"""Settings of the API process, read from the environment (CONVEYOR_API_*)."""

from __future__ import annotations

from pydantic import Field, model_validator
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
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="a known API key is trusted this long without a lookup; a revoked key "
        "stops working within this time (s)",
    )
    stream_retry_ms: int = Field(
        default=2000, ge=0, description="how long a browser waits before reconnecting (ms)"
    )


class JwtSettings(BaseSettings):
    """The platform frontend's login tokens. Set JWT_SECRET (HS256) or JWT_JWKS_URL (RS256),
    with JWT_ISSUER and JWT_AUDIENCE; unset, only API keys are accepted."""

    model_config = SettingsConfigDict(env_prefix="JWT_", extra="ignore")

    secret: str | None = Field(default=None, min_length=32, description="HS256 shared secret")
    jwks_url: str | None = Field(default=None, description="RS256 public keys (a JWKS URL)")
    issuer: str | None = Field(default=None, description="the `iss` every token must carry")
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
