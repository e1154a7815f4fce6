"""One error shape for every failure, `{"error": {"code", "message", "details"}}`, and the
one place where domain errors become HTTP status codes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from jobs.db import CONSTRAINT_ERRORS, DATA_ERRORS, TRANSIENT_ERRORS
from jobs.errors import InvalidTransition, JobNotFound
from jobs.logging import get_logger

log = get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 408, 409, 413, 422, 503)
}
"""The error responses every authenticated route documents."""


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


_NAMED = re.compile(r"(?P<field>[a-z_]+): (?P<problem>.+)", re.S)


def field_errors(errors: Any) -> list[dict[str, Any]]:
    fields = []
    for e in errors:
        if e.get("type") == "json_invalid":  # loc is ("body", character offset)
            at = e.get("loc", ("body", "?"))[-1]
            reason = (e.get("ctx") or {}).get("error", "")
            fields.append(
                {
                    "field": "body",
                    "problem": f"malformed JSON at character {at}: {reason}".rstrip(": "),
                    "type": "json_invalid",
                }
            )
            continue
        field = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        problem = str(e.get("msg", "")).removeprefix("Value error, ")
        named = _NAMED.match(problem)
        if not field and named:  # a check of the whole model naming the field it concerns
            field, problem = named["field"], named["problem"]
        fields.append({"field": field or "body", "problem": problem, "type": e.get("type")})
    return fields


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = field_errors(exc.errors())
        summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        return error_response(422, "invalid_request", f"the request is invalid: {summary}", fields)

    @app.exception_handler(JobNotFound)
    async def _missing(_: Request, exc: JobNotFound) -> JSONResponse:
        return error_response(404, "job_not_found", str(exc))

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: InvalidTransition) -> JSONResponse:
        return error_response(409, "invalid_state", str(exc), {"state": exc.state})

    async def _refused(_: Request, exc: Exception) -> JSONResponse:
        # A safety net: validation should have caught this before the database did. Logged,
        # because it means a rule is missing from the API's models.
        # The driver's text stays in the log: it names columns and quotes statements.
        constraint = getattr(exc, "constraint_name", None)
        log.warning("api.constraint_refused", constraint=constraint, error=str(exc))
        return error_response(
            422,
            "invalid_request",
            "the request breaks a rule of the stored data; check its values against the "
            "API's documentation (/docs)",
            {"rule": constraint},
        )

    async def _unstorable(_: Request, exc: Exception) -> JSONResponse:
        # Another safety net: a value Postgres cannot hold (a NUL character in text or
        # jsonb, a date out of its range) is the client's input, not our failure. The
        # server's DataError and asyncpg's own ("invalid input for query argument") alike.
        log.warning("api.data_refused", sqlstate=getattr(exc, "sqlstate", None), error=str(exc))
        return error_response(
            422,
            "invalid_request",
            "a value in the request is outside what can be stored (a date past year 9999, "
            "a NUL character, a number too large); check it against the API's documentation",
        )

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database is restarting, unreachable or full: the request may succeed in a
        # moment (a write that did land is found again by its idempotency key).
        log.warning("api.database_unavailable", error_type=type(exc).__name__, error=str(exc))
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable right now; try again in a few seconds",
            headers={"Retry-After": "2"},
        )

    # The database's errors, by the tuples jobs.db names (a handler is found by the
    # exception's class and its bases, so the order of registration does not matter).
    for refused in CONSTRAINT_ERRORS:
        app.add_exception_handler(refused, _refused)
    for unstorable in DATA_ERRORS:
        app.add_exception_handler(unstorable, _unstorable)
    for unavailable in TRANSIENT_ERRORS:
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        if status == 400:  # FastAPI's "error parsing the body": JSON it could not decode
            return error_response(
                422,
                "invalid_request",
                "the body is unreadable as JSON: not UTF-8, nested too deeply, or a number "
                "of more digits than any field takes",
            )
        headers = dict(exc.headers) if exc.headers else {}
        if status == 405:  # every method of every route on this path, not just the first's
            headers["Allow"] = ", ".join(_allowed_methods(request))
        code = _STATUS_CODES.get(status, "http_error")
        return error_response(status, code, str(exc.detail), headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    allowed: set[str] = set()
    for route in _leaves(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "_"})
        if match is Match.PARTIAL:
            allowed.update(getattr(route, "methods", None) or ())
    return sorted(allowed)


def _leaves(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, also those of included routers (FastAPI keeps an included router as one
    entry; ours are included without a prefix of their own, so their paths are complete)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _leaves(included.routes)
        else:
            yield route
