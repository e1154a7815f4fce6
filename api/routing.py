"""Every API route is a `GuardedRoute`: it authenticates the caller, checks the role, and only
then reads the body, within a size and a time limit; FastAPI parses and validates what is left.

FastAPI on its own reads and decodes the body before it resolves any dependency, so an
unauthenticated `{` got a 422 about JSON instead of a 401, and a user's malformed body to an
admin route a 422 instead of a 403: a stranger learnt how a route parses before being told
to authenticate. Reading the body here also gives one answer for an oversize body however it
is sent (413 with or without Content-Length) and a 408 for one that stops arriving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.auth import admin, authenticated, stream_caller
from api.errors import ApiError
from api.keys import Principal
from api.settings import ApiSettings

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


Authenticate = Callable[[Request], Coroutine[Any, Any, Principal]]


def needs(dependant: Dependant) -> tuple[Authenticate | None, bool]:
    """How a route's dependencies authenticate (None: they do not), and whether they ask
    for an admin."""
    found: set[Any] = set()

    def walk(d: Dependant) -> None:
        if d.call in (admin, authenticated, stream_caller):
            found.add(d.call)
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    how = stream_caller if stream_caller in found else authenticated if found else None
    return how, admin in found


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        authenticate, admin_only = needs(self.dependant)
        reads_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            if authenticate is not None:
                who = await authenticate(request)
                if admin_only:
                    await admin(who)
            if reads_body:
                settings = app_settings(request)
                await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
            return await handler(request)

        return guarded


async def read_body(request: Request, limit: int, timeout_s: float) -> None:
    """The whole body into the request (where FastAPI reads it next): 413 past `limit`
    bytes, declared or not; 408 when it has not all arrived `timeout_s` after the headers."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, seen = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"the request body did not arrive within {timeout_s:g} s of its headers",
            headers={"Connection": "close"},
        ) from None
    request._body = b"".join(chunks)  # Starlette's cache: FastAPI's `request.body()` reads it


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the request body is over {limit:,} bytes",
        headers={"Connection": "close"},
    )


def app_settings(request: Request) -> ApiSettings:
    """The settings the app was made with (`create_app`)."""
    settings: ApiSettings = request.app.state.settings
    return settings


def app_specs(request: Request) -> Mapping[str, type[BaseModel]]:
    """Every kind's payload model the app validates with: the built-in ones and an app's."""
    specs: Mapping[str, type[BaseModel]] = request.app.state.specs
    return specs
