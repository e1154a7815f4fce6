"""Real `conveyor` processes for tests: workers and the API, each logging to a file."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from conveyor.embedded import free_port

IP = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
"""iproute2's `ip`, for workers in network namespaces (None: not installed)."""


class Processes:
    """Starts `conveyor worker` and `conveyor api` subprocesses against one database and
    kills whatever is left of them at the end."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(
        self,
        args: list[str],
        env: dict[str, str],
        open_files: int | None = None,
        *,
        prefix: Sequence[str] = (),
        url: str | None = None,
    ) -> subprocess.Popen[bytes]:
        def limit_files() -> None:
            if open_files is not None:  # soft and hard: the process cannot raise it
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "conveyor.cli", *args],
            env={**os.environ, "DATABASE_URL": url or self.url, **env},
            preexec_fn=limit_files,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: nobody reads a pipe while the test waits, and a process
            # blocked on a full pipe would look like a stalled queue.
            stderr=(self.log_dir / f"proc-{len(self.procs)}.log").open("wb"),
        )
        self.procs.append(proc)
        return proc

    def start_worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self._start(*self._worker(args, env))

    def start_worker_in(
        self, netns: str, url: str, *args: str, **env: str
    ) -> subprocess.Popen[bytes]:
        """A worker inside network namespace `netns` (`ip netns exec`, as root), reaching the
        database at `url`: an address that namespace has a route to. `ip netns exec` execs the
        command, so the process's pid is the worker's (`worker.pid`)."""
        return self._start(
            *self._worker(args, env), prefix=[IP or "ip", "netns", "exec", netns], url=url
        )

    @staticmethod
    def _worker(args: Sequence[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return (
            ["worker", "--poll", "0.2s", "--reap-every", "0.5s", *args],
            {"CONVEYOR_BACKOFF_BASE_S": "0.1", "CONVEYOR_BACKOFF_CAP_S": "2", **env},
        )

    def start_api(self, timeout: float = 30.0, open_files: int | None = None, **env: str) -> str:
        """Starts `conveyor api` on a free port; returns its base URL once /ready answers.
        `open_files` caps its open-file limit (RLIMIT_NOFILE, soft and hard)."""
        port = free_port()
        proc = self._start(["api", "--port", str(port)], env, open_files)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log(proc)
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    return base_url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the API did not become ready in {timeout}s: {self.log(proc)}")

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.log_dir / f"proc-{self.procs.index(proc)}.log").read_text()

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)


@dataclass
class System:
    """A running Conveyor: its API's URL, API keys by name (alice and bob are users, root an
    admin), and the processes."""

    base_url: str
    keys: dict[str, str]
    procs: Processes

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}
