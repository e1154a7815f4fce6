"""One error shape for every failure, `{"error": {"code", "message", "details"}}`, and the
one place where domain errors become HTTP status codes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobs.errors import InvalidTransition, JobNotFound


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


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
        fields.append(
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
                "problem": e.get("msg"),
                "type": e.get("type"),
            }
        )
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

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)
