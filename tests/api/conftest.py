from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from stores.keys import create_key
from tests.processes import System


@dataclass
class Api:
    client: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def post(
        self, path: str, who: str = "alice", headers: dict[str, str] | None = None, **kw: object
    ) -> httpx.Response:
        return await self.client.post(path, headers={**self.auth(who), **(headers or {})}, **kw)

    async def get(self, path: str, who: str = "alice") -> httpx.Response:
        return await self.client.get(path, headers=self.auth(who))


@pytest.fixture
async def api(db_url: str, conn) -> AsyncIterator[Api]:
    keys = {
        "alice": await create_key(conn, "alice", "user"),
        "bob": await create_key(conn, "bob", "user"),
        "root": await create_key(conn, "root", "admin"),
    }
    app = create_app(db_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor") as client:
            yield Api(client, keys)


@pytest.fixture
async def live(system: System) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    """A real `conveyor api` and `conveyor worker`, and auth headers for alice, bob and root."""
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
        yield client, {who: system.auth(who) for who in system.keys}
