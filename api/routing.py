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
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import admin, authenticated
from api.errors import ApiError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def needs(dependant: Dependant) -> str | None:
    """`admin`, `caller` or None: the strictest credential a route's dependencies ask for."""
    found: set[str] = set()

    def walk(d: Dependant) -> None:
        if d.call is admin:
            found.add("admin")
        elif d.call is authenticated:
            found.add("caller")
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    return "admin" if "admin" in found else ("caller" if found else None)


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        credential = needs(self.dependant)
        reads_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            if credential is not None:
                who = await authenticated(request)
                if credential == "admin":
                    await admin(who)
            if reads_body:
                settings = request.app.state.settings
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
