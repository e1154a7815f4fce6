"""`conveyor.client` against a real `conveyor api` and `conveyor worker`: submit, get, list,
cancel, retry, errors, and a stream that resumes with Last-Event-ID after its connection is
cut (by a proxy between them) — sync, async, and through `conveyor watch`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from conveyor.client import ApiError, AsyncClient, Client, Unreachable
from conveyor.embedded import free_port

pytestmark = pytest.mark.slow


class CuttingProxy:
    """A TCP proxy to the API on its own thread and loop; `cut()` drops every connection
    through it (as a load balancer restarting would), new ones are let through."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.at_cut: int | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
            self._writers.update((writer, up_writer))
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main() -> None:
            await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()
            await asyncio.Event().wait()

        self._loop.run_until_complete(main())

    @property
    def reconnected(self) -> bool:
        return self.at_cut is not None and self.connections > self.at_cut

    def cut(self) -> None:
        def close_all() -> None:
            self.at_cut = self.connections
            for w in self._writers:
                w.transport.abort()
            self._writers.clear()

        self._loop.call_soon_threadsafe(close_all)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_the_sync_client_submits_reads_lists_cancels_retries_and_says_what_failed(system):
    with Client(system.base_url, system.keys["alice"]) as c:
        job = c.submit("demo.noop", idempotency_key="client-1")
        assert job["owner"] == "key:alice"
        assert c.submit("demo.noop", idempotency_key="client-1")["id"] == job["id"]
        assert c.wait(job["id"])["state"] == "succeeded"
        later = c.submit("demo.sleep", {"seconds": 1}, queue="elsewhere", delay_s=3600)
        listed = [j["id"] for j in c.list(kind=["demo.noop", "demo.sleep"], limit=1)]
        assert listed == [later["id"], job["id"]]  # every page, newest first
        assert c.cancel(later["id"])["state"] == "cancelled"
        assert c.retry(later["id"])["state"] == "queued"
        with pytest.raises(ApiError) as refused:
            c.submit("no.such.kind")
        assert refused.value.status == 422 and refused.value.code == "unknown_kind"
        with pytest.raises(ApiError) as missing:
            c.get(10**12)
        assert missing.value.status == 404
    with pytest.raises(Unreachable), Client(f"http://127.0.0.1:{free_port()}", "k") as c:
        c.get(1)


def test_a_stream_resumes_after_its_connection_is_cut_without_repeats(system):
    proxy = CuttingProxy(_port(system.base_url))
    with Client(f"http://127.0.0.1:{proxy.port}", system.keys["alice"]) as c:
        job = c.submit("demo.progress", {"steps": 6, "interval_s": 0.4})
        events = []
        for event in c.stream(job["id"]):
            events.append(event)
            if len(events) == 2:
                proxy.cut()  # mid-job: the client must reconnect and resume
    assert proxy.reconnected
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))  # nothing sent twice
    assert events[-1].data["state"] == "succeeded"
    progress = [e.data["progress"] for e in events]
    assert progress == sorted(progress)


async def test_the_async_client_follows_a_job_across_a_cut(system):
    proxy = CuttingProxy(_port(system.base_url))
    async with AsyncClient(f"http://127.0.0.1:{proxy.port}", system.keys["alice"]) as c:
        job = await c.submit("demo.progress", {"steps": 5, "interval_s": 0.4})
        seen = []
        async for event in c.stream(job["id"]):
            seen.append(event)
            if len(seen) == 2:
                proxy.cut()
        assert seen[-1].data["state"] == "succeeded" and proxy.reconnected
        assert len({e.id for e in seen}) == len(seen)
        assert [j["id"] async for j in c.list(kind="demo.progress")] == [job["id"]]
        assert (await c.get(job["id"]))["result"] == {"steps": 5}


def test_conveyor_watch_rides_out_a_cut_connection(system):
    proxy = CuttingProxy(_port(system.base_url))
    url = f"http://127.0.0.1:{proxy.port}"
    with Client(url, system.keys["alice"]) as c:
        job = c.submit("demo.progress", {"steps": 6, "interval_s": 0.5})
    watch = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "watch", str(job["id"])],
        env={**os.environ, "CONVEYOR_API_URL": url, "CONVEYOR_API_KEY": system.keys["alice"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    threading.Timer(1.5, proxy.cut).start()
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert f"job {job['id']} succeeded" in out and proxy.reconnected
