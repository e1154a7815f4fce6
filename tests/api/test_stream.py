"""GET /v1/jobs/{id}/stream read by a real HTTP client from a real `conveyor api`, while a
real `conveyor worker` runs the job."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

pytestmark = pytest.mark.slow


@dataclass
class Event:
    type: str
    id: str
    data: dict


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """A Server-Sent Events parser: fields until a blank line make one event; comments
    (keep-alives) and `retry:` are skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                data = json.loads(fields["data"])
                yield Event(fields.get("event", "message"), fields["id"], data)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def submit(client, headers, steps: int, interval_s: float) -> int:
    r = await client.post(
        "/v1/jobs",
        json={"kind": "demo.progress", "payload": {"steps": steps, "interval_s": interval_s}},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_a_stream_shows_progress_then_success_and_ends(live):
    client, auth = live
    job_id = await submit(client, auth["alice"], steps=4, interval_s=0.4)
    async with client.stream("GET", f"/v1/jobs/{job_id}/stream", headers=auth["alice"]) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e async for e in read_events(r)]  # returns when the server ends the stream

    assert events[0].type == "state" and events[0].data["job_id"] == job_id
    progress = [e.data["progress"] for e in events if e.type == "progress"]
    assert len(progress) >= 2 and progress == sorted(progress)  # seen as it happened
    last = events[-1]
    assert last.type == "state" and last.data["state"] == "succeeded"
    assert (last.data["progress"], last.data["result"]) == (100, {"steps": 4})
    assert len({e.id for e in events}) == len(events)

    # An EventSource reconnects when a stream ends; with the last id it gets 204: stop.
    again = await client.get(
        f"/v1/jobs/{job_id}/stream", headers={**auth["alice"], "Last-Event-ID": last.id}
    )
    assert again.status_code == 204


async def test_a_reconnect_with_last_event_id_resumes_without_repeats(live):
    client, auth = live
    job_id = await submit(client, auth["alice"], steps=6, interval_s=0.4)
    url = f"/v1/jobs/{job_id}/stream"
    first: list[Event] = []
    async with client.stream("GET", url, headers=auth["alice"]) as r:
        async for event in read_events(r):
            first.append(event)
            if event.type == "progress":
                break  # the connection drops mid-job
    resumed_from = first[-1]

    async with client.stream(
        "GET", url, headers={**auth["alice"], "Last-Event-ID": resumed_from.id}
    ) as r:
        second = [e async for e in read_events(r)]

    assert second, "the resumed stream sent nothing"
    assert not {e.id for e in second} & {e.id for e in first}
    assert second[0].data["progress"] >= resumed_from.data["progress"]
    assert second[-1].data["state"] == "succeeded"


async def test_another_users_job_does_not_stream(live):
    client, auth = live
    job_id = await submit(client, auth["alice"], steps=1, interval_s=0.1)
    r = await client.get(f"/v1/jobs/{job_id}/stream", headers=auth["bob"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    r = await client.get(f"/v1/jobs/{job_id}/stream")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
