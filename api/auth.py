"""Who is calling: `Authorization: Bearer <key>`, checked against the api_key table."""

from __future__ import annotations

from fastapi import Request

from api.errors import ApiError
from api.keys import Principal, authenticate

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>` "
            "(create one with `conveyor keys create --name NAME`)",
            headers=_CHALLENGE,
        )
    who = await authenticate(request.app.state.store.pool, key.strip())
    if who is None:
        raise ApiError(
            401, "unauthorized", "this API key is unknown or revoked", headers=_CHALLENGE
        )
    return who
