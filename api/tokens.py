"""The platform frontend's users: JWTs (HS256 with a shared secret, or RS256 with keys from a
JWKS URL) verified with PyJWT. `sub` is the principal; a `role` claim of `admin` grants admin.

The algorithm is fixed by configuration, never taken from the token's header, and issuer,
audience, expiry and subject are required.
"""

from __future__ import annotations

import asyncio

import jwt

from api.keys import Principal
from api.settings import JwtSettings


class InvalidToken(Exception):
    """The token is not acceptable; the message says why, for the caller."""


def looks_like_jwt(credential: str) -> bool:
    """Three dot-separated parts; API keys (`cvk_…`) never contain a dot."""
    return credential.count(".") == 2


class TokenVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, lifespan=int(settings.jwks_cache_s), timeout=10)
            if settings.jwks_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        s = self.settings
        key: object
        if self._jwks is not None:
            try:  # PyJWKClient fetches with urllib: keep that off the event loop
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            except jwt.PyJWKClientConnectionError as exc:
                raise InvalidToken(f"the signing keys could not be fetched: {exc}") from exc
            except jwt.PyJWTError as exc:
                raise InvalidToken(f"no signing key for this token: {exc}") from exc
            algorithms = ["RS256"]
        else:
            key, algorithms = s.secret, ["HS256"]
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired: sign in again") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is invalid: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not 1 <= len(sub) <= 256 or not printable(sub):
            raise InvalidToken(
                "the token's `sub` must be 1 to 256 printable characters of valid Unicode"
            )
        return Principal(
            "jwt",
            sub,
            "admin" if claims.get("role") == "admin" else "user",
            issuer=s.issuer,
            expires_at=float(claims["exp"]) + s.leeway_s,
        )


def printable(text: str) -> bool:
    """Text that can be stored, logged and sent back: valid UTF-8 (no lone surrogates, which
    JSON's `\\ud800` escapes can smuggle in) and no control characters (NUL among them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return text.isprintable()
