"""How `conveyor api` serves the app: uvicorn, with bounds on what a connection may hold.

uvicorn times out idle keep-alive connections, but not one that never finishes its request
headers: 1,100 such connections held every file descriptor of a 1,024 limit, and `/health`
failed until they went away on their own, which they never did. So each connection here:
- must finish its headers within `header_timeout_s` of opening (or of its first byte after a
  keep-alive pause), else it is closed (`api.header_timeout`);
- counts against `max_connections`, set below the open-file limit; at the cap a new
  connection closes the longest-waiting one that has no request in progress (half-sent
  headers, an idle keep-alive), so a flood of slow connections cannot lock a probe out, and
  when every connection is busy with a request the newcomer is closed (`api.connection_cap`).
The body has its own deadline (`body_timeout_s`, a 408) in `api.routing`. Per-client limits
(connections or requests per address) are the proxy's job: see docs/security.md.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from api.settings import ApiSettings
from jobs.logging import get_logger

log = get_logger(__name__)

RESERVED_FILES = 64
"""Descriptors kept back from connections: database connections, the listening sockets,
log files, the JWKS fetch."""


def raise_open_file_limit() -> int:
    """The soft open-file limit raised to the hard one (often 1,024 soft against far more
    hard); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(configured: int | None, open_files: int) -> int:
    """At most `configured`, and always under the open-file limit with room to spare."""
    room = max(16, open_files - RESERVED_FILES)
    return room if configured is None else min(configured, room)


class BoundedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools, or h11 without it) with a header deadline and a
    connection cap. Both of uvicorn's protocols keep the request being served in `cycle`."""

    header_timeout_s: float = 10.0
    max_connections: int = 1000
    _configured = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not BoundedProtocol._configured:  # once per process, from the environment
            settings = ApiSettings()
            BoundedProtocol.header_timeout_s = settings.header_timeout_s
            BoundedProtocol.max_connections = connection_cap(
                settings.max_connections, raise_open_file_limit()
            )
            BoundedProtocol._configured = True
        self._waiting_since = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None

    def _serving(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is not None and not cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._serving():
            self._disarm()
        elif self._deadline is None:  # the first byte of the next request on a kept connection
            self._waiting_since = time.monotonic()
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_timeout(self) -> None:
        self._deadline = None
        if not self._serving() and not self.transport.is_closing():
            log.info("api.header_timeout", client=_address(self.client))
            self.transport.close()

    def _make_room(self) -> None:
        waiting = [
            c
            for c in self.connections
            if c is not self and isinstance(c, BoundedProtocol) and not c._serving()
        ]
        if waiting:
            oldest = min(waiting, key=lambda c: c._waiting_since)
            log.info("api.connection_cap", closed=_address(oldest.client), reason="waiting longest")
            oldest.transport.close()
        else:
            log.warning("api.connection_cap", closed=_address(self.client), reason="all busy")
            self.transport.close()


def _address(client: tuple[str, int] | None) -> str | None:
    return f"{client[0]}:{client[1]}" if client else None


def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    settings = ApiSettings()
    uvicorn.run(
        "api.app:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=BoundedProtocol,
        timeout_keep_alive=settings.keepalive_timeout_s,
        log_level="warning",
    )
