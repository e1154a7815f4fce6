"""API keys managed through the API (admins only): created and shown once, listed without
any secret, revoked so that every API process refuses the key at once, each change written
to the audit log; and the same rules as `conveyor keys`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

import api.auth
from api.app import create_app
from api.errors import ApiError
from api.settings import ApiSettings
from jobs.store import Store
from stores.keys import KeyStore, create_key, hash_key, name_problem, revoke_key
from tests.support import eventually


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make(api, name: str, role: str = "user", who: str = "root") -> httpx.Response:
    return await api.client.post(
        "/v1/keys", json={"name": name, "role": role}, headers=api.auth(who)
    )


async def audit(conn) -> list[tuple[str, str, dict]]:
    rows = await conn.fetch("SELECT actor, action, data FROM audit_event ORDER BY id")
    return [(r["actor"], r["action"], json.loads(r["data"])) for r in rows]


async def test_a_new_key_is_shown_once_works_at_once_and_is_listed_without_a_secret(api):
    r = await make(api, "ci-bot")
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"name", "role", "created_at", "revoked_at", "key"}
    assert (made["name"], made["role"], made["revoked_at"]) == ("ci-bot", "user", None)
    assert made["key"].startswith("cvk_") and len(made["key"]) > 40
    assert r.headers["cache-control"] == "no-store"

    me = await api.client.get("/v1/me", headers=bearer(made["key"]))
    assert me.status_code == 200, me.text
    assert (me.json()["owner"], me.json()["role"]) == ("key:ci-bot", "user")

    listed = await api.client.get("/v1/keys", headers=api.auth("root"))
    assert listed.status_code == 200, listed.text
    assert [k["name"] for k in listed.json()] == ["alice", "bob", "ci-bot", "root"]
    entry = next(k for k in listed.json() if k["name"] == "ci-bot")
    assert entry == {k: made[k] for k in ("name", "role", "created_at", "revoked_at")}
    for secret in (made["key"], hash_key(made["key"]), *api.keys.values()):
        assert secret not in listed.text
    assert "hash" not in listed.text


async def test_an_admin_key_made_here_is_an_admin(api):
    r = await make(api, "ops", "admin")
    assert r.status_code == 201, r.text
    workers = await api.client.get("/v1/workers", headers=bearer(r.json()["key"]))
    assert workers.status_code == 200, workers.text


async def test_a_revoked_key_answers_401_right_after(api):
    key = (await make(api, "ci-bot")).json()["key"]
    assert (await api.client.get("/v1/me", headers=bearer(key))).status_code == 200  # cached

    r = await api.client.delete("/v1/keys/ci-bot", headers=api.auth("root"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["role"], body["revoked_own_key"]) == ("ci-bot", "user", False)
    assert body["revoked_at"] is not None

    after = await api.client.get("/v1/me", headers=bearer(key))  # within the 5 s cache
    assert after.status_code == 401, after.text
    assert "revoked" in after.json()["error"]["message"]
    listed = {k["name"]: k for k in (await api.get("/v1/keys", "root")).json()}
    assert listed["ci-bot"]["revoked_at"] == body["revoked_at"]
    assert listed["alice"]["revoked_at"] is None
    assert (await api.get("/v1/me", "alice")).status_code == 200  # the others still work


async def test_revoking_a_revoked_or_unknown_key_answers_404_saying_which(api):
    assert (await api.client.delete("/v1/keys/bob", headers=api.auth("root"))).status_code == 200
    again = await api.client.delete("/v1/keys/bob", headers=api.auth("root"))
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "key_not_found"
    assert "'bob' was already revoked on" in again.json()["error"]["message"]
    unknown = await api.client.delete("/v1/keys/nobody", headers=api.auth("root"))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no key named 'nobody': GET /v1/keys lists them"


async def test_an_admin_may_revoke_its_own_key_and_the_answer_says_so(api):
    key = (await make(api, "ops", "admin")).json()["key"]
    r = await api.client.delete("/v1/keys/ops", headers=bearer(key))
    assert r.status_code == 200, r.text
    assert r.json()["revoked_own_key"] is True
    assert (await api.client.get("/v1/keys", headers=bearer(key))).status_code == 401
    assert (await api.get("/v1/keys", "root")).status_code == 200


async def test_a_taken_name_answers_409_live_or_revoked(api, conn):
    live = await make(api, "alice")
    assert live.status_code == 409, live.text
    error = live.json()["error"]
    assert error["code"] == "key_name_taken"
    assert error["message"].startswith("a key named 'alice' already exists: pick another name")
    await revoke_key(conn, "bob")
    revoked = await make(api, "bob", "admin")
    assert revoked.status_code == 409, revoked.text
    message = revoked.json()["error"]["message"]
    assert "a key named 'bob' was revoked on" in message
    assert "pick another name" in message and "even a revoked one's" in message
    assert await conn.fetchval("SELECT count(*) FROM api_key WHERE name = 'bob'") == 1
    assert await audit(conn) == []  # nothing made, nothing recorded


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"name": "ci bot"}, "name", "letters, digits and _ . : - only, not ' '"),
        ({"name": "a/b"}, "name", "not '/'"),
        ({"name": ""}, "name", "1 to 128 characters, not 0"),
        ({"name": "x" * 129}, "name", "1 to 128 characters, not 129"),
        ({"name": 7}, "name", "valid string"),
        ({"role": "user"}, "name", "Field required"),
        ({"name": "ok", "role": "root"}, "role", "'user' or 'admin'"),
        ({"name": "ok", "roles": ["admin"]}, "roles", "Extra inputs"),
    ],
)
async def test_a_bad_name_or_role_answers_422_naming_the_field(api, conn, body, field, says):
    r = await api.client.post("/v1/keys", json=body, headers=api.auth("root"))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == [field]
    assert says in error["message"] and says in error["details"][0]["problem"]
    assert await conn.fetchval("SELECT count(*) FROM api_key") == 3


async def test_a_user_gets_403_on_every_key_route(api, conn):
    for method, path, body in (
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "mine", "role": "admin"}),
        ("DELETE", "/v1/keys/bob", None),
    ):
        r = await api.client.request(method, path, json=body, headers=api.auth("alice"))
        assert r.status_code == 403, (method, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert (await api.get("/v1/me", "bob")).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM api_key WHERE name = 'mine'") == 0
    assert await audit(conn) == []


async def test_audit_events_name_who_created_and_revoked_which_key(api, conn):
    ops = (await make(api, "ops", "admin")).json()["key"]
    await api.client.post("/v1/keys", json={"name": "ci-bot"}, headers=bearer(ops))
    await api.client.delete("/v1/keys/ci-bot", headers=api.auth("root"))
    await api.client.delete("/v1/keys/ci-bot", headers=api.auth("root"))  # 404: not recorded
    assert await audit(conn) == [
        ("key:root", "key.created", {"name": "ops", "role": "admin"}),
        ("key:ops", "key.created", {"name": "ci-bot", "role": "user"}),
        ("key:root", "key.revoked", {"name": "ci-bot", "role": "user"}),
    ]
    at = await conn.fetch(
        "SELECT e.at, k.revoked_at FROM audit_event e JOIN api_key k ON k.name = e.data->>'name'"
        " WHERE e.action = 'key.revoked'"
    )
    assert at[0]["at"] == at[0]["revoked_at"]  # one statement, one transaction


@asynccontextmanager
async def serving(db_url: str, key_cache_s: float) -> AsyncIterator[httpx.AsyncClient]:
    """An API of its own (its own key cache and listener), as another process would be."""
    app = create_app(db_url, ApiSettings(key_cache_s=key_cache_s))
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.watch.listening.wait(), 10)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor") as client:
            yield client


async def test_a_revocation_reaches_every_api_process_before_its_key_cache_expires(db_url, conn):
    root = bearer(await create_key(conn, "root", "admin"))
    one, two = (
        bearer(await create_key(conn, "one", "user")),
        bearer(await create_key(conn, "two", "user")),
    )
    async with serving(db_url, 600) as a, serving(db_url, 600) as b:
        for client in (a, b):
            for key in (one, two):
                assert (await client.get("/v1/me", headers=key)).status_code == 200  # cached

        assert (await a.delete("/v1/keys/one", headers=root)).status_code == 200

        async def refused(key: dict[str, str]) -> bool:
            return (await b.get("/v1/me", headers=key)).status_code == 401

        await eventually(lambda: refused(one), timeout=2)  # not the cache's 600 s
        assert (await b.get("/v1/me", headers=two)).status_code == 200
        await revoke_key(conn, "two")  # as `conveyor keys revoke` does, outside any API
        for client in (a, b):
            await eventually(lambda client=client: _refuses(client, two), timeout=2)


async def _refuses(client: httpx.AsyncClient, key: dict[str, str]) -> bool:
    return (await client.get("/v1/me", headers=key)).status_code == 401


@pytest.mark.slow
async def test_two_api_processes_refuse_a_key_revoked_through_one_of_them(procs, conn):
    root = bearer(await create_key(conn, "root", "admin"))
    key = bearer(await create_key(conn, "ci-bot", "user"))
    bases = [procs.start_api(CONVEYOR_API_KEY_CACHE_S="600") for _ in range(2)]
    async with httpx.AsyncClient(timeout=10) as client:
        for base in bases:
            assert (await client.get(f"{base}/v1/me", headers=key)).status_code == 200
        r = await client.delete(f"{bases[0]}/v1/keys/ci-bot", headers=root)
        assert r.status_code == 200, r.text
        assert (await client.get(f"{bases[0]}/v1/me", headers=key)).status_code == 401

        async def refused() -> bool:
            return (await client.get(f"{bases[1]}/v1/me", headers=key)).status_code == 401

        await eventually(refused, timeout=2)  # a notification away, not the cache's 600 s


def keys_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", "keys", *args],
        env={**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_applies_the_same_rules_and_writes_the_same_audit(api, db_url, conn):
    bad = await asyncio.to_thread(keys_cli, db_url, "create", "--name", "ci bot")
    assert bad.returncode == 2
    problem = name_problem("ci bot")
    assert problem is not None
    assert problem in " ".join(bad.stderr.replace("│", " ").split())
    taken = await asyncio.to_thread(keys_cli, db_url, "create", "--name", "alice")
    assert taken.returncode == 2
    api_says = (await make(api, "alice")).json()["error"]["message"]
    assert api_says in " ".join(taken.stderr.replace("│", " ").split())

    made = await asyncio.to_thread(keys_cli, db_url, "create", "--name", "cron", "--role", "admin")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert (await api.client.get("/v1/workers", headers=bearer(key))).status_code == 200
    revoked = await asyncio.to_thread(keys_cli, db_url, "revoke", "cron")
    assert revoked.returncode == 0, revoked.stderr
    await eventually(lambda: _refuses(api.client, bearer(key)), timeout=2)  # the cache: 5 s
    assert await audit(conn) == [
        ("cli", "key.created", {"name": "cron", "role": "admin"}),
        ("cli", "key.revoked", {"name": "cron", "role": "admin"}),
    ]


async def test_a_lookup_under_way_when_its_key_is_revoked_is_not_cached(db_url, conn, monkeypatch):
    """The revoke's notification reaches the cache while a request is still reading the
    key as live: that request may pass, but its answer must not be kept for the next ones."""
    key = await create_key(conn, "carol", "user")
    store = await Store.connect(db_url)
    auth = api.auth.Authenticator(KeyStore(store.db), None, 600)
    looked_up = 0
    real = KeyStore.authenticate

    async def revoked_meanwhile(keys, digest):
        nonlocal looked_up
        looked_up += 1
        who = await real(keys, digest)  # read as live, then the revoke lands
        await revoke_key(conn, "carol")
        auth.forget("carol")  # what the KEYS_CHANNEL notification does
        return who

    monkeypatch.setattr(KeyStore, "authenticate", revoked_meanwhile)
    try:
        assert (await auth(key)).name == "carol"
        monkeypatch.setattr(KeyStore, "authenticate", real)
        with pytest.raises(ApiError) as refused:
            await auth(key)  # looked up again, not served from the cache
        assert refused.value.status == 401
    finally:
        await store.close()
    assert looked_up == 1
