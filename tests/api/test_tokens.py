"""The frontend's JWTs: HS256 with a shared secret and RS256 from a JWKS URL served over
real HTTP; issuer, audience, expiry and signature checked; `sub` owns jobs, `role` grants
admin. And the API-key cache: a revoked key stops working within its interval."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from api.app import create_app
from api.settings import ApiSettings, JwtSettings
from stores.keys import create_key, revoke_key
from tests.support import eventually

SECRET = "s" * 40
ISSUER, AUDIENCE = "https://login.example.test", "conveyor"


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "carol",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


@asynccontextmanager
async def client_for(
    db_url: str, settings: JwtSettings, **api: object
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db_url, ApiSettings(**api), settings)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor") as c:
            yield c


@pytest.fixture
async def hs256(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = JwtSettings(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    async with client_for(db_url, settings) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_submits_as_its_subject_and_sees_only_its_jobs(hs256):
    carol = bearer(jwt.encode(claims(), SECRET, algorithm="HS256"))
    dave = bearer(jwt.encode(claims(sub="dave"), SECRET, algorithm="HS256"))
    r = await hs256.post("/v1/jobs", json={"kind": "demo.noop"}, headers=carol)
    assert r.status_code == 201 and r.json()["owner"] == f"jwt:{ISSUER}:carol"
    job_id = r.json()["id"]
    assert (await hs256.get(f"/v1/jobs/{job_id}", headers=carol)).status_code == 200
    assert (await hs256.get(f"/v1/jobs/{job_id}", headers=dave)).status_code == 404
    admin = bearer(jwt.encode(claims(sub="erin", role="admin"), SECRET, algorithm="HS256"))
    assert (await hs256.get(f"/v1/jobs/{job_id}", headers=admin)).status_code == 200


@pytest.mark.parametrize(
    ("token", "says"),
    [  # made when the test runs: a token made at collection expires before a long suite ends
        (lambda: jwt.encode(claims(exp=int(time.time()) - 120), SECRET, "HS256"), "expired"),
        (lambda: jwt.encode(claims(aud="billing"), SECRET, algorithm="HS256"), "audience"),
        (lambda: jwt.encode(claims(iss="https://evil.test"), SECRET, "HS256"), "issuer"),
        (lambda: jwt.encode(claims(), "x" * 40, algorithm="HS256"), "signature"),
        (lambda: jwt.encode(claims(sub=None), SECRET, algorithm="HS256"), "sub"),
        (lambda: jwt.encode(claims(exp=None), SECRET, algorithm="HS256"), "exp"),
        (lambda: jwt.encode(claims(), None, algorithm="none"), "alg"),
        (lambda: "not.a.token", "invalid"),
    ],
    ids=["expired", "audience", "issuer", "signature", "no-sub", "no-exp", "alg-none", "junk"],
)
async def test_a_bad_token_answers_401_saying_why(hs256, token, says):
    r = await hs256.get("/v1/jobs", headers=bearer(token()))
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert says in r.json()["error"]["message"].lower()


def hs256_by_hand(header: dict, payload: dict, key: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


class Jwks:
    """A JWKS endpoint over real HTTP, as an identity provider serves it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, key: object = None, **overrides: object) -> str:
        return jwt.encode(
            claims(**overrides), key or self.key, algorithm="RS256", headers={"kid": "k1"}
        )


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    j = Jwks()
    yield j
    j.server.shutdown()


async def test_rs256_tokens_are_checked_against_the_jwks(db_url, jwks):
    settings = JwtSettings(jwks_url=jwks.url, issuer=ISSUER, audience=AUDIENCE)
    async with client_for(db_url, settings) as c:
        ok = await c.get("/v1/jobs", headers=bearer(jwks.sign(role="admin")))
        assert ok.status_code == 200, ok.text

        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = await c.get("/v1/jobs", headers=bearer(jwks.sign(key=stranger)))
        assert forged.status_code == 401

        # HS256 keyed with the public key: the algorithm-confusion attack. PyJWT will not
        # even sign that, so the token is put together by hand.
        public_pem = jwks.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        confused = hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), public_pem)
        assert (await c.get("/v1/jobs", headers=bearer(confused))).status_code == 401


async def test_a_jwt_is_refused_when_none_is_configured(api):
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    r = await api.client.get("/v1/jobs", headers=bearer(token))
    assert r.status_code == 401 and "not configured" in r.json()["error"]["message"]


def test_jwt_settings_need_an_issuer_and_an_audience_and_one_key_source():
    with pytest.raises(ValidationError, match="JWT_ISSUER and JWT_AUDIENCE"):
        JwtSettings(secret=SECRET)
    with pytest.raises(ValidationError, match="not both"):
        JwtSettings(secret=SECRET, jwks_url="http://x", issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValidationError, match="at least 32"):
        JwtSettings(secret="short", issuer=ISSUER, audience=AUDIENCE)
    assert not JwtSettings().enabled


async def test_a_revoked_key_stops_working_within_the_cache_interval(db_url, conn):
    key = await create_key(conn, "frank", "user")
    async with client_for(db_url, JwtSettings(), key_cache_s=0.5) as c:
        assert (await c.get("/v1/jobs", headers=bearer(key))).status_code == 200
        await revoke_key(conn, "frank")

        async def refused() -> bool:
            return (await c.get("/v1/jobs", headers=bearer(key))).status_code == 401

        await eventually(refused, timeout=5)


async def test_token_subjects_and_key_names_are_different_owners(db_url, conn):
    """A token whose `sub` is a key's name is not that key: it reads none of the key's jobs,
    nor does a key created later with a user's name read that user's jobs; a token naming
    the admin key is a user like any other."""
    carol_key = await create_key(conn, "carol", "user")
    await create_key(conn, "root", "admin")
    settings = JwtSettings(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    async with client_for(db_url, settings) as c:
        by_key = await c.post("/v1/jobs", json={"kind": "demo.noop"}, headers=bearer(carol_key))
        carol_token = bearer(jwt.encode(claims(sub="carol"), SECRET, algorithm="HS256"))
        by_token = await c.post("/v1/jobs", json={"kind": "demo.noop"}, headers=carol_token)
        assert by_key.json()["owner"] == "key:carol"
        assert by_token.json()["owner"] == f"jwt:{ISSUER}:carol"
        key_job, token_job = by_key.json()["id"], by_token.json()["id"]
        assert (await c.get(f"/v1/jobs/{key_job}", headers=carol_token)).status_code == 404
        r = await c.post(f"/v1/jobs/{key_job}/cancel", headers=carol_token)
        assert r.status_code == 404
        assert (await c.get(f"/v1/jobs/{token_job}", headers=bearer(carol_key))).status_code == 404
        listed = (await c.get("/v1/jobs", headers=carol_token)).json()["jobs"]
        assert [j["id"] for j in listed] == [token_job]

        root_token = bearer(jwt.encode(claims(sub="root"), SECRET, algorithm="HS256"))
        me = (await c.get("/v1/me", headers=root_token)).json()
        assert (me["owner"], me["source"], me["is_admin"]) == (f"jwt:{ISSUER}:root", "jwt", False)
        assert (await c.get(f"/v1/jobs/{key_job}", headers=root_token)).status_code == 404

        dave_token = bearer(jwt.encode(claims(sub="dave"), SECRET, algorithm="HS256"))
        daves = (await c.post("/v1/jobs", json={"kind": "demo.noop"}, headers=dave_token)).json()
        dave_key = await create_key(conn, "dave", "user")  # a key made later, a user's name
        assert (await c.get(f"/v1/jobs/{daves['id']}", headers=bearer(dave_key))).status_code == 404


@pytest.mark.parametrize("sub", ["\ud800", "a\udfffb", "nul\x00", "tab\there"])
async def test_a_signed_token_whose_sub_is_not_printable_text_answers_401_not_500(hs256, sub):
    # json.dumps writes a lone surrogate as the escape \ud800: valid JSON, invalid Unicode.
    token = jwt.encode(claims(sub=sub), SECRET, algorithm="HS256")
    for path in ("/v1/me", "/v1/jobs"):
        r = await hs256.get(path, headers=bearer(token))
        assert r.status_code == 401, r.text
        assert "printable" in r.json()["error"]["message"]


def test_the_issuer_must_be_printable_and_bounded():
    with pytest.raises(ValidationError):
        JwtSettings(secret=SECRET, issuer="a\nb", audience=AUDIENCE)
    with pytest.raises(ValidationError):
        JwtSettings(secret=SECRET, issuer="i" * 513, audience=AUDIENCE)
