"""A throwaway PgBouncer in transaction pooling mode in front of a PostgreSQL server, for the
tests (`tests/integration/test_pgbouncer.py`) and `bench/pooler.py`: Conveyor meets the
pooler most managed Postgres is reached through, on this machine.

Debian's `pgbouncer` package (`make test` installs it). PgBouncer refuses to run as root,
so as root it runs as `postgres`, as the embedded cluster does, in a folder of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from conveyor.embedded import free_port


def find_pgbouncer() -> str | None:
    """The pgbouncer program, on PATH or where Debian puts it."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


class PgBouncer:
    """`start` returns the pooler's URL (database `postgres`; swap the path for another);
    `stop` kills it and removes its folder. Every user is trusted, as on the server."""

    def __init__(self, server_url: str, *, pool_size: int = 20, max_clients: int = 400) -> None:
        self.server = urlsplit(server_url)
        self.pool_size, self.max_clients = pool_size, max_clients
        self.port = free_port()
        self.folder: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> str:
        return (self.folder / "pgbouncer.log").read_text() if self.folder else ""

    def start(self, timeout: float = 10.0) -> str:
        program = find_pgbouncer()
        if program is None:
            raise RuntimeError("pgbouncer not found: install it (apt-get install pgbouncer)")
        self.folder = folder = Path(tempfile.mkdtemp(prefix="conveyor-pgbouncer-"))
        folder.chmod(0o755)
        (folder / "users.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.server.hostname} port={self.server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
            f"max_client_conn = {self.max_clients}\n"
        )
        for f in folder.iterdir():
            f.chmod(0o644)
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if prefix:
            os.chown(folder, pwd.getpwnam("postgres").pw_uid, -1)
        with (folder / "pgbouncer.log").open("wb") as log:
            # A session of its own: as root the child is runuser, and killing runuser alone
            # would leave pgbouncer running; `stop` kills the whole group.
            self._proc = subprocess.Popen(
                [*prefix, program, str(folder / "pgbouncer.ini")],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return self.url
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start: {self.log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
            self._proc = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
