"""What the API does with hostile input, before and after authentication: bodies read only
after the credential and role are checked, one answer for an oversize body however it is
sent, dates bounded at the edge, no driver's text in a message, and the headers every
response carries. In process (httpx's ASGI transport) against a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api.app import create_app

ANONYMOUS: dict[str, str] = {}
BAD_KEY = {"Authorization": "Bearer cvk_not-a-key"}
MALFORMED = b'{"kind": '


def operations_with_a_body() -> list[tuple[str, str]]:
    """Every operation of the OpenAPI schema that takes a body: a new one is covered here
    without anyone listing it."""
    schema = create_app("postgresql://unused/db").openapi()
    found = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                path = path.replace("{job_id}", "1").replace("{name}", "x").replace("{kind}", "x")
                found.append((method.upper(), path.replace("{owner}", "key:x")))
    return found


BODIES = operations_with_a_body()
ADMIN_ONLY = {
    "/v1/schedules",
    "/v1/schedules/x",
    "/v1/jobs/retry",
    "/v1/jobs/retry/count",
    "/v1/queues/x",
    "/v1/quotas/key:x",
    "/v1/shares/key:x",
    "/v1/kinds/x",
    "/v1/keys",
}
METHODS = {
    "/v1/schedules/x": "PATCH",
    "/v1/queues/x": "PATCH",
    "/v1/quotas/key:x": "PUT",
    "/v1/shares/key:x": "PUT",
    "/v1/kinds/x": "PATCH",
}


def test_the_generated_list_holds_every_body_route():
    assert {p for _, p in BODIES} == ADMIN_ONLY | {"/v1/jobs", "/v1/jobs/batch", "/v1/jobs/bulk"}


@pytest.mark.parametrize(("method", "path"), BODIES, ids=[f"{m} {p}" for m, p in BODIES])
@pytest.mark.parametrize("who", [ANONYMOUS, BAD_KEY], ids=["no credential", "bad key"])
async def test_a_malformed_body_without_a_valid_credential_answers_401_not_422(
    api, method, path, who
):
    headers = {**who, "Content-Type": "application/json"}
    r = await api.client.request(method, path, content=MALFORMED, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    big = await api.client.request(method, path, content=b"x" * (2 << 20), headers=headers)
    assert big.status_code == 401, big.text  # the body is not read for a stranger


@pytest.mark.parametrize("path", sorted(ADMIN_ONLY))
async def test_a_users_malformed_body_to_an_admin_route_answers_403_not_422(api, path):
    method = METHODS.get(path, "POST")
    headers = {**api.auth("alice"), "Content-Type": "application/json"}
    r = await api.client.request(method, path, content=MALFORMED, headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    yield b'{"kind": "demo.noop", "payload": {"blob": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


async def test_an_oversize_body_sent_chunked_answers_413_as_with_a_length(api):
    r = await api.client.post(
        "/v1/jobs",
        content=_chunks(2 << 20),  # no Content-Length: Transfer-Encoding chunked
        headers={**api.auth("alice"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert "1,048,576 bytes" in r.json()["error"]["message"]
    fits = await api.client.post(
        "/v1/jobs",
        content=_chunks(512 * 1024),
        headers={**api.auth("alice"), "Content-Type": "application/json"},
    )
    # read whole and parsed: the kind's model is what refuses it
    assert fits.status_code == 422 and fits.json()["error"]["code"] == "invalid_payload"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", {"kind": "demo.noop", "run_at": "0001-01-01T00:00:00Z"}),
        ("/v1/jobs", {"kind": "demo.noop", "run_at": "0001-01-01T00:00:00+01:00"}),
        ("/v1/jobs", {"kind": "demo.noop", "run_at": "9999-12-31T23:59:59-10:00"}),
        ("/v1/jobs/retry/count", {"filter": {"finished_after": "0001-01-01T00:30:00+01:00"}}),
    ],
)
async def test_a_date_out_of_range_answers_422_naming_the_range_in_our_words(api, path, body):
    r = await api.post(path, json=body, who="root")
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "a year from 1000 to 9998" in message
    assert "asyncpg" not in message and "query argument" not in message


@pytest.mark.parametrize(
    "query",
    [
        "created_after=0001-01-01T00:00:00%2B01:00",
        "created_before=9999-12-31T23:59:59-10:00",
        "finished_after=0001-01-01T00:00:00Z",
    ],
)
async def test_a_listing_date_out_of_range_answers_422_not_a_driver_message(api, query):
    r = await api.get(f"/v1/jobs?{query}")
    assert r.status_code == 422, r.text
    assert "a year from 1000 to 9998" in r.json()["error"]["message"]


async def test_a_date_with_an_offset_is_stored_and_served_back_in_utc(api):
    r = await api.post(
        "/v1/jobs", json={"kind": "demo.noop", "run_at": "1000-01-01T00:30:00+01:00"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["run_at"] == "0999-12-31T23:30:00Z"
    later = await api.post(
        "/v1/jobs", json={"kind": "demo.noop", "run_at": "9998-12-31T23:00:00-10:00"}
    )
    assert later.status_code == 201 and later.json()["run_at"] == "9999-01-01T09:00:00Z"


async def test_every_response_carries_nosniff_and_json_errors_keep_their_shape(api):
    for r in (
        await api.get("/v1/jobs"),
        await api.client.get("/v1/jobs"),  # 401
        await api.client.get("/v1/nothing"),  # 404
        await api.client.get("/health"),
        await api.client.get("/openapi.json"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff", r.url


async def test_docs_are_served_from_here_under_a_csp_that_allows_only_this_server(api):
    page = await api.client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "cdn" not in page.text and "<script>" not in page.text  # no inline script
    for src in ("/docs/swagger-ui-bundle.js", "/docs/start.js", "/docs/swagger-ui.css"):
        asset = await api.client.get(src)
        assert asset.status_code == 200 and asset.headers["content-security-policy"] == csp
    assert (await api.client.get("/docs/../app.py")).status_code == 404
    assert (await api.client.get("/docs/SWAGGER-UI-LICENSE")).status_code == 404  # not served
    assert (await api.client.get("/redoc")).status_code == 404


HOSTILE_BODIES = {
    "nested 100,000 deep": b"[" * 100_000,
    "a payload nested 3,000 deep": b'{"kind":"demo.noop","payload":'
    + b'{"a":' * 3000
    + b"1"
    + b"}" * 3001,
    "a 5,000-digit number": b'{"kind":"demo.noop","priority":' + b"9" * 5000 + b"}",
    "1e999999": b'{"kind":"demo.sleep","payload":{"seconds":1e999999}}',
    "NaN": b'{"kind":"demo.sleep","payload":{"seconds":NaN}}',
    "a lone surrogate in a key": b'{"kind":"demo.noop","idempotency_key":"a\\ud800b"}',
    "a lone surrogate in the payload": b'{"kind":"demo.noop","payload":{"\\ud800":1}}',
    "an array": b"[1,2]",
    "a string": b'"x"',
    "nothing": b"",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])
async def test_a_hostile_body_answers_422_in_the_error_shape(api, path, body):
    headers = {**api.auth("alice"), "Content-Type": "application/json"}
    r = await api.client.post(path, content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in {"invalid_request", "invalid_payload", "unknown_kind"}


def paths_with_an_id(of_type: str) -> list[str]:
    """Every path of the schema with an id of this type in it: "integer" (a job's, a
    strategy's) or "string" (a worker's)."""
    schema = create_app("postgresql://unused/db").openapi()
    return [
        path
        for path, ops in schema["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
        if p["in"] == "path"
        and p["schema"].get("type") == of_type
        and (of_type == "integer" or p["name"].endswith("_id"))
    ]


@pytest.mark.parametrize("template", sorted(set(paths_with_an_id("integer"))))
async def test_hostile_ids_in_every_id_path_answer_in_the_error_shape(api, template):
    for bad in ("9" * 5000, "9" * 19, "-1", "0", "1.5", "1e3", "%00", "０１"):
        path = template.split("{")[0] + bad + template.split("}", 1)[1]
        for headers in ({}, api.auth("alice")):
            r = await api.client.get(path, headers=headers)
            assert r.status_code in (401, 404, 405, 422), (path[:60], r.status_code, r.text[:200])
            assert r.json()["error"]["code"]


def test_the_string_id_paths_are_found():
    assert "/v1/workers/{worker_id}" in paths_with_an_id("string")


@pytest.mark.parametrize("template", sorted(set(paths_with_an_id("string"))))
async def test_hostile_string_ids_answer_in_the_error_shape(api, template):
    for bad in ("x" * 5000, "a b", "%00", "a%2Fb", "ü", "..", "a;b", "'; DROP TABLE worker; --"):
        path = template.split("{")[0] + bad + template.split("}", 1)[1]
        for headers in ({}, api.auth("alice"), api.auth("root")):
            r = await api.client.get(path, headers=headers)
            assert r.status_code in (401, 403, 404, 422), (path[:60], r.status_code, r.text[:200])
            assert r.json()["error"]["code"]
