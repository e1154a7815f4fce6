"""Who is calling: `Authorization: Bearer <credential>`, where the credential is an API key
(checked against the api_key table) or, when JWT_* is configured, a frontend user's JWT."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.keys import Principal
from api.stream_tokens import BadStreamToken
from api.stream_tokens import verify as verify_stream_token
from api.tokens import InvalidToken, TokenVerifier, looks_like_jwt
from stores.keys import KeyStore, hash_key

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Authenticator:
    """Turns a bearer credential into a Principal.

    Known keys are remembered for `key_cache_s` seconds, so a busy client costs one lookup
    per interval rather than one per request. A key revoked with `stores.keys.revoke_key` (the
    API's DELETE, the CLI) is forgotten at once: its statement notifies `KEYS_CHANNEL`, which
    `JobWatch` hears and passes to `forget`. A key revoked otherwise (an UPDATE by hand), or
    while the listener is disconnected, stops working within `key_cache_s`.
    """

    def __init__(self, keys: KeyStore, tokens: TokenVerifier | None, key_cache_s: float) -> None:
        self.keys, self.tokens, self.key_cache_s = keys, tokens, key_cache_s
        self._known: dict[str, tuple[Principal, float]] = {}
        self._forgotten = 0
        """Counts `forget` calls: a lookup that began before one does not cache its answer
        (the key may have been revoked while it read)."""

    async def __call__(self, credential: str) -> Principal:
        if looks_like_jwt(credential):
            if self.tokens is None:
                raise _unauthorized("JWTs are not accepted here (JWT_* is not configured)")
            try:
                return await self.tokens.verify(credential)
            except InvalidToken as exc:
                raise _unauthorized(str(exc), invalid_token=True) from None
        digest = hash_key(credential)
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        forgotten = self._forgotten
        found = await self.keys.authenticate(digest)
        if found is None:
            self._known.pop(digest, None)
            raise _unauthorized("this API key is unknown or revoked", invalid_token=True)
        who = Principal.key(*found)
        if len(self._known) > 10_000:  # keys are few; this only bounds a pathological case
            self._known.clear()
        if forgotten == self._forgotten:
            self._known[digest] = (who, now + self.key_cache_s)
        return who

    def forget(self, name: str) -> None:
        """Drop the key named `name` from the cache ("*": every key), so its next request
        looks it up again."""
        self._forgotten += 1
        if name == "*":
            self._known.clear()
            return
        for digest, (who, _) in list(self._known.items()):
            if who.name == name:
                del self._known[digest]

    async def still_holds(self, who: Principal) -> str | None:
        """For a stream opened with a stream token (no credential to check again): why the
        principal no longer holds, or None. A key must still be live with the same role; a
        token user's credential lasts until its expiry, which the stream watches itself."""
        if who.source != "key":
            return None
        role = await self.keys.live_role(who.name)
        if role is None:
            return "this API key is unknown or revoked"
        if role != who.role:
            return "this API key's role changed: open the stream again"
        return None


def _unauthorized(message: str, invalid_token: bool = False) -> ApiError:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


async def authenticated(request: Request) -> Principal:
    """The caller, authenticated once per request (`GuardedRoute` does it before the body is
    read; the route's dependency then finds it here)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    request.state.principal = who = await _authenticate(request)
    return who


async def stream_caller(request: Request) -> Principal:
    """`authenticated`, or else a stream token (`?token=`, from `POST …/stream-token`) for
    the stream this request opens: the only routes where a credential may be in the URL."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    token = request.query_params.get("token")
    if bearer_credential(request) is not None or not token:
        return await authenticated(request)
    job_id = request.path_params.get("job_id")
    scope = f"job:{job_id}" if job_id is not None else "active"
    try:
        who = verify_stream_token(request.app.state.stream_secret, token, scope)
    except BadStreamToken as exc:
        raise _unauthorized(str(exc), invalid_token=True) from None
    request.state.principal = who
    return who


async def _authenticate(request: Request) -> Principal:
    credential = bearer_credential(request)
    if credential is None:
        raise ApiError(
            401,
            "unauthorized",
            "send an API key or a JWT as `Authorization: Bearer <credential>` "
            "(create a key with `conveyor keys create --name NAME`)",
            headers=_CHALLENGE,
        )
    authenticator: Authenticator = request.app.state.auth
    return await authenticator(credential)


def bearer_credential(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


class Lapse:
    """A request's credential, checked again for as long as a stream it opened lasts: an API
    key revoked since (seen within the key cache's interval), a JWT past `exp` and leeway."""

    def __init__(self, request: Request, who: Principal) -> None:
        self._authenticator: Authenticator = request.app.state.auth
        self._credential = bearer_credential(request) or ""
        self.who = who

    def seconds_to_expiry(self) -> float | None:
        if self.who.expires_at is None:
            return None
        return max(0.0, self.who.expires_at - time.time())

    async def reason(self) -> str | None:
        """Why the credential no longer holds, or None while it does."""
        if self.seconds_to_expiry() == 0.0:
            return "the token has expired: sign in again"
        if not self._credential:  # opened with a stream token
            return await self._authenticator.still_holds(self.who)
        try:
            await self._authenticator(self._credential)
        except ApiError as exc:
            return exc.message
        return None


Caller = Annotated[Principal, Depends(authenticated)]
"""A route parameter: the authenticated principal."""

StreamCaller = Annotated[Principal, Depends(stream_caller)]
"""A stream route's parameter: the principal, by its credential or a stream token."""


async def admin(who: Caller) -> Principal:
    """A dependency, so a non-admin gets 403 before anything else about the request."""
    if not who.is_admin:
        raise ApiError(403, "forbidden", "this needs an admin key or token")
    return who


Admin = Annotated[Principal, Depends(admin)]
"""A route parameter: the authenticated principal, who must be an admin."""
