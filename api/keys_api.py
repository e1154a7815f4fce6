"""API keys, for admins: list them, create one (the key shown once), revoke one. The same
rules as `conveyor keys` (`stores.keys`); each change is written to `audit_event` with who made
it, in the same statement."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.auth import Admin, Authenticator
from api.errors import ERRORS, ApiError
from api.routing import GuardedRoute
from api.schemas import TEXT, KeyCreatedOut, KeyIn, KeyOut, KeyRevokedOut
from jobs.logging import get_logger
from stores.keys import NAME_MAX, KeyNameTaken, KeyStore

log = get_logger(__name__)

router = APIRouter(route_class=GuardedRoute)

NO_STORE = {"Cache-Control": "no-store"}
"""On the answer that holds a new key: no cache along the way keeps it."""


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@router.get("/v1/keys", response_model=list[KeyOut], responses=ERRORS, tags=["keys"])
async def list_api_keys(request: Request, _admin: Admin) -> list[KeyOut]:
    """Admin only: every key, live and revoked, by name: its role, when it was created and
    when revoked (null while live). Never a key itself, nor its hash."""
    return [KeyOut(**asdict(k)) for k in await _keys(request).all()]


@router.post(
    "/v1/keys", status_code=201, response_model=KeyCreatedOut, responses=ERRORS, tags=["keys"]
)
async def create_api_key(
    request: Request, response: Response, body: KeyIn, who: Admin
) -> KeyCreatedOut:
    """Admin only: a new key, which works at once. The answer holds the key itself, the only
    time it is shown: only its SHA-256 is stored. 409 when the name is taken, by a live or a
    revoked key (a name is never given to a second key)."""
    try:
        info, key = await _keys(request).issue(body.name, body.role, by=who.owner)
    except KeyNameTaken as exc:
        raise ApiError(409, "key_name_taken", str(exc), {"name": body.name}) from None
    log.info("key.created", name=info.name, role=info.role, by=who.owner)
    response.headers.update(NO_STORE)
    return KeyCreatedOut(**asdict(info), key=key)


KeyName = Annotated[
    str, Path(min_length=1, max_length=NAME_MAX, pattern=TEXT, description="the key's name")
]


@router.delete("/v1/keys/{name}", response_model=KeyRevokedOut, responses=ERRORS, tags=["keys"])
async def revoke_api_key(request: Request, name: KeyName, who: Admin) -> KeyRevokedOut:
    """Admin only: revoke a key. Its next request to any API process answers 401, and a
    stream it opened ends within a recheck. The answer is the key, `revoked_at` set, and
    `revoked_own_key` true when it is the key this request was made with (allowed: another
    admin key, or `conveyor keys create`, signs in again). 404 for a name no key has or a key
    already revoked: a key is revoked once, and the name stays taken."""
    keys = _keys(request)
    revoked = await keys.revoke(name, by=who.owner)
    if revoked is None:
        known = await keys.find(name)
        if known is None or known.revoked_at is None:  # live: created since the UPDATE
            raise ApiError(404, "key_not_found", f"no key named {name!r}: GET /v1/keys lists them")
        raise ApiError(
            404,
            "key_not_found",
            f"the key {name!r} was already revoked on {known.revoked_at:%Y-%m-%d %H:%M} UTC",
        )
    authenticator: Authenticator = request.app.state.auth
    authenticator.forget(name)  # here at once; the other processes on the notification
    own = who.source == "key" and who.name == name
    log.info("key.revoked", name=name, role=revoked.role, by=who.owner, own_key=own)
    return KeyRevokedOut(**asdict(revoked), revoked_own_key=own)
