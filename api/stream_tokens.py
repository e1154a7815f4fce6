"""Short-lived tokens that open one stream, for browsers: `EventSource` cannot send an
`Authorization` header, so a page asks for a token with its credential
(`POST /v1/jobs/{id}/stream-token`, `POST /v1/jobs/active/stream-token`) and opens
`…/stream?token=…`. A token is accepted only as `?token=` on the stream it names, within
`TOKEN_TTL_S` of being issued; the stream it opens then lasts as long as the credential that
asked for it (a revoked key or an expired JWT ends it, as with a header).

A token is `<payload>.<signature>`, base64url: the payload names the principal, the stream
(`job:<id>` or `active`), when the token expires and when the credential behind it does;
the signature is HMAC-SHA256 with the deployment's stream secret (CONVEYOR_API_STREAM_SECRET,
or else the one migration 0007 stored in the database), so every API process verifies what
any of them issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from api.keys import Principal

TOKEN_TTL_S = 60.0


class BadStreamToken(Exception):
    """Why a stream token is refused, for the caller."""


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, who: Principal, scope: str, now: float | None = None) -> Issued:
    now = time.time() if now is None else now
    expires = now + TOKEN_TTL_S
    if who.expires_at is not None:
        expires = min(expires, who.expires_at)
    claims = {
        "src": who.source,
        "sub": who.name,
        "role": who.role,
        "iss": who.issuer,
        "cex": who.expires_at,
        "scope": scope,
        "exp": expires,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return Issued(f"{payload}.{signature}", expires)


def verify(secret: bytes, token: str, scope: str, now: float | None = None) -> Principal:
    """The principal a token was issued to, if it is genuine, unexpired and for `scope`."""
    now = time.time() if now is None else now
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise BadStreamToken("the stream token is not one this API issued")
    try:
        claims = json.loads(_unb64(payload))
        source, name, role = claims["src"], claims["sub"], claims["role"]
        issuer, credential_expiry = claims["iss"], claims["cex"]
        token_scope, expires = claims["scope"], float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise BadStreamToken("the stream token is malformed") from None
    if token_scope != scope:
        raise BadStreamToken(f"the stream token is for another stream ({token_scope})")
    if now >= expires:
        raise BadStreamToken(
            "the stream token has expired: ask for a new one (they last "
            f"{TOKEN_TTL_S:.0f} s, to open a stream)"
        )
    return Principal(source, name, role, issuer=issuer, expires_at=credential_expiry)
