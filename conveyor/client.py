"""A Python client for Conveyor's REST API, sync and async, over httpx.

    from conveyor.client import Client

    with Client("http://127.0.0.1:8000", key) as conveyor:
        job = conveyor.submit("demo.progress", {"steps": 5, "interval_s": 0.2})
        for event in conveyor.stream(job["id"]):
            print(event.type, event.data["state"], event.data["progress"])
        print(conveyor.get(job["id"])["result"])

`AsyncClient` has the same methods, awaited (`stream` is an async iterator). Jobs come back
as the API's JSON (dicts). Every error answer raises `ApiError` with the API's status, code
and message; an API that cannot be reached raises `Unreachable`.

`stream` follows a job's Server-Sent Events and resumes after a dropped connection with
`Last-Event-ID`, so nothing is repeated and nothing is missed; it ends after the job's
terminal state (or at once when the client already has it), and raises `StreamEnded` when
the server ends the stream because the credential stopped holding.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

TERMINAL = frozenset({"succeeded", "dead", "cancelled"})


class ApiError(Exception):
    """The API answered with an error: `status`, `code`, `message`, `details`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class Unreachable(Exception):
    """No answer from the API (refused, reset, timed out)."""


class StreamEnded(Exception):
    """The server ended a stream before the job did (the key was revoked, the token expired)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    """`state` or `progress`."""
    id: str | None
    data: dict[str, Any]


@dataclass
class SseReader:
    """Lines of a job's SSE stream in, events out (comments and `retry:` skipped); an `end`
    event raises StreamEnded. `last_id` is the id to resume from."""

    last_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def line(self, text: str) -> Event | None:
        if text == "":
            fields, self.fields = self.fields, {}
            if "data" not in fields:
                return None
            data = json.loads(fields["data"])
            event = Event(fields.get("event", "message"), fields.get("id"), data)
            if event.type == "end":
                raise StreamEnded(data["code"], data["message"])
            self.last_id = event.id or self.last_id
            return event
        if not text.startswith(":"):
            name, _, value = text.partition(":")
            self.fields[name] = value.removeprefix(" ")
        return None


def _raise_for(response: httpx.Response) -> None:
    """ApiError for an error answer (its body read), in the API's words when it has them."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", response.text, None
    raise ApiError(response.status_code, code, message or response.reason_phrase, details)


def _body(kind: str, payload: dict[str, Any] | None, options: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "payload": payload or {}, **options}


def _params(state: Any, kind: Any, queue: Any, limit: int, cursor: str | None) -> dict[str, Any]:
    def many(value: Any) -> list[str]:
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    params: dict[str, Any] = {"state": many(state), "kind": many(kind), "queue": many(queue)}
    params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    return params


RECONNECT_S = 1.0


def _resume(reader: SseReader) -> dict[str, str]:
    return {"Last-Event-ID": reader.last_id} if reader.last_id else {}


class Client:
    """The API, synchronously. Use it as a context manager, or call `close()`."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the API at {self._http.base_url}: {exc}") from exc
        _raise_for(response)
        return response.json() if response.content else None

    def submit(self, kind: str, payload: dict[str, Any] | None = None, **options: Any) -> Any:
        """Enqueue a job (options: queue, priority, run_at, delay_s, max_attempts, timeout_s,
        idempotency_key, unique_key, debounce_s); the job as stored (with a unique key, maybe
        the active job that holds it)."""
        return self.request("POST", "/v1/jobs", json=_body(kind, payload, options))

    def submit_many(self, jobs: list[dict[str, Any]]) -> Any:
        """Up to 10,000 jobs (`{"kind": …, "payload": …}` each) in one statement."""
        return self.request("POST", "/v1/jobs/batch", json={"jobs": jobs})

    def get(self, job_id: int) -> Any:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def list(
        self, *, state: Any = None, kind: Any = None, queue: Any = None, limit: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Jobs newest first, every page; `state`, `kind`, `queue` take one value or many."""
        cursor = None
        while True:
            page = self.request(
                "GET", "/v1/jobs", params=_params(state, kind, queue, min(limit, 500), cursor)
            )
            yield from page["jobs"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def cancel(self, job_id: int) -> Any:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel")

    def retry(self, job_id: int) -> Any:
        return self.request("POST", f"/v1/jobs/{job_id}/retry")

    def stream(self, job_id: int, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events until its end, resuming after a drop (see the module's text)."""
        reader = SseReader(last_id=last_event_id)
        while True:
            try:
                with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/stream", headers=_resume(reader), timeout=None
                ) as response:
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        response.read()
                        _raise_for(response)
                    for line in response.iter_lines():
                        if (event := reader.line(line)) is not None:
                            yield event
                            if event.data.get("state") in TERMINAL:
                                return
            except httpx.TransportError:
                pass  # dropped: resume from the last id
            time.sleep(RECONNECT_S)

    def wait(self, job_id: int) -> Any:
        """Follow the job until it ends; the finished job."""
        for _ in self.stream(job_id):
            pass
        return self.get(job_id)


class AsyncClient:
    """The API, for asyncio code: the same methods as `Client`, awaited."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the API at {self._http.base_url}: {exc}") from exc
        _raise_for(response)
        return response.json() if response.content else None

    async def submit(self, kind: str, payload: dict[str, Any] | None = None, **options: Any) -> Any:
        return await self.request("POST", "/v1/jobs", json=_body(kind, payload, options))

    async def submit_many(self, jobs: list[dict[str, Any]]) -> Any:
        return await self.request("POST", "/v1/jobs/batch", json={"jobs": jobs})

    async def get(self, job_id: int) -> Any:
        return await self.request("GET", f"/v1/jobs/{job_id}")

    async def list(
        self, *, state: Any = None, kind: Any = None, queue: Any = None, limit: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        cursor = None
        while True:
            page = await self.request(
                "GET", "/v1/jobs", params=_params(state, kind, queue, min(limit, 500), cursor)
            )
            for job in page["jobs"]:
                yield job
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def cancel(self, job_id: int) -> Any:
        return await self.request("POST", f"/v1/jobs/{job_id}/cancel")

    async def retry(self, job_id: int) -> Any:
        return await self.request("POST", f"/v1/jobs/{job_id}/retry")

    async def stream(self, job_id: int, last_event_id: str | None = None) -> AsyncIterator[Event]:
        reader = SseReader(last_id=last_event_id)
        while True:
            try:
                async with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/stream", headers=_resume(reader), timeout=None
                ) as response:
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response)
                    async for line in response.aiter_lines():
                        if (event := reader.line(line)) is not None:
                            yield event
                            if event.data.get("state") in TERMINAL:
                                return
            except httpx.TransportError:
                pass
            await asyncio.sleep(RECONNECT_S)

    async def wait(self, job_id: int) -> Any:
        async for _ in self.stream(job_id):
            pass
        return await self.get(job_id)
