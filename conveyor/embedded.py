"""A throwaway PostgreSQL cluster from the server binaries on this machine.

Used by `conveyor dev` when no DATABASE_URL is set and by the test suite when no
TEST_DATABASE_URL is set: one code path for both. PostgreSQL refuses to run as root, so as
root every server command runs as an unprivileged user (`postgres` by default) through
`runuser`, in a directory that user owns.

Why not pytest-postgresql: its process fixture runs `pg_ctl` as the current user, which fails
as root (CI), and `conveyor dev` needs the same launcher outside pytest anyway.
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from jobs.errors import ConfigurationError, ConveyorError
from jobs.logging import get_logger

log = get_logger(__name__)


class PostgresNotFound(ConfigurationError):
    """No initdb/pg_ctl to start an embedded cluster, and no DATABASE_URL either."""


class EmbeddedPostgresError(ConveyorError):
    """The embedded PostgreSQL cluster could not be created, started or stopped."""


_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/opt/homebrew/opt/postgresql@*/bin",  # macOS, Homebrew
    "/usr/local/opt/postgresql@*/bin",
)

HOW_TO_GET_POSTGRES = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH, in PG_BIN_DIR, or "
    "in the usual install folders. Install them (Debian/Ubuntu: `apt-get install "
    "postgresql`; macOS: `brew install postgresql@15`), or point DATABASE_URL at a running "
    "server (TEST_DATABASE_URL for the test suite)."
)

DURABLE_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# For test clusters only: nothing in them outlives the run, so skip the disk flushes.
THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _version_key(path: str) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in path).split()
    return tuple(int(d) for d in digits)


def find_bin_dir(search: tuple[str, ...] = _SEARCH_GLOBS) -> Path:
    """The folder holding initdb and pg_ctl: PG_BIN_DIR, then PATH, then install folders."""
    explicit = os.environ.get("PG_BIN_DIR")
    candidates: list[Path] = [Path(explicit)] if explicit else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for pattern in search:
        candidates.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key)[::-1])
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresNotFound(HOW_TO_GET_POSTGRES)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedPostgres:
    """initdb + pg_ctl start on a free loopback port; `destroy` removes the cluster.

    `durable=False` turns fsync off (tests); `durable=True` keeps PostgreSQL's defaults
    (benchmarks, `conveyor dev`). With `root`, the cluster lives there and outlives the
    process: a later `start` with the same root finds it and starts it again (on this
    object's port), which is how `conveyor dev` keeps its data between runs.

    `trust_networks` (CIDRs, e.g. `10.231.7.0/24`) are let in without a password besides
    loopback, for servers that also listen on other addresses (`listen_addresses` in
    `settings`); by default only loopback connections are accepted, as initdb writes it.
    """

    def __init__(
        self,
        *,
        durable: bool = True,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        run_as: str | None = None,
        root: Path | None = None,
        trust_networks: Sequence[str] = (),
    ) -> None:
        self.bin_dir = find_bin_dir()
        # Parsed here, so a typo fails before initdb and only a network reaches pg_hba.conf.
        self.trust_networks = [str(ipaddress.ip_network(n)) for n in trust_networks]
        self.port = port or free_port()
        self.durable = durable
        self.settings = {
            "listen_addresses": "'127.0.0.1'",
            "max_connections": "200",
            **(DURABLE_SETTINGS if durable else THROWAWAY_SETTINGS),
            **(settings or {}),
        }
        self._run_as = run_as or os.environ.get("CONVEYOR_PG_USER", "postgres")
        self.data_dir: Path | None = None
        self._root_dir: Path | None = None
        if root is not None and (root / "data" / "PG_VERSION").exists():
            self._root_dir, self.data_dir = root, root / "data"
        self._root_wanted = root

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        assert self._root_dir is not None
        return self._root_dir / "server.log"

    def start(self) -> str:
        """Create the cluster (first call) and start the server; returns its URL."""
        if self.data_dir is None:
            self._create()
        elif self.postmaster_pid() is not None and _alive(self.postmaster_pid() or 0):
            raise EmbeddedPostgresError(
                f"the cluster in {self._root_dir} is already running (postmaster pid "
                f"{self.postmaster_pid()}): is another `conveyor dev` running here? Stop it first"
            )
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", f"-p {self.port}")
        log.info("postgres.started", port=self.port, data_dir=str(self.data_dir))
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; the cluster stays on disk until `destroy`."""
        if self.data_dir is not None and (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)
            log.info("postgres.stopped", port=self.port)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; `start` recovers the cluster."""
        pid = self.postmaster_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(EmbeddedPostgresError):
            self.stop(mode="immediate")
        if self._root_dir is not None:
            shutil.rmtree(self._root_dir, ignore_errors=True)
            self._root_dir = self.data_dir = None

    def postmaster_pid(self) -> int | None:
        if self.data_dir is None:
            return None
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- internals -------------------------------------------------------------------------

    def _runner(self) -> tuple[list[str], tuple[int, int] | None]:
        """The command prefix and uid/gid to use: as root, drop to an unprivileged user."""
        if os.geteuid() != 0:
            return [], None
        try:
            user = pwd.getpwnam(self._run_as)
        except KeyError:
            raise EmbeddedPostgresError(
                f"running as root, and PostgreSQL refuses to: no user {self._run_as!r} to run "
                "it as. Create one (`useradd --system postgres`), set CONVEYOR_PG_USER to an "
                "existing unprivileged user, or set DATABASE_URL."
            ) from None
        return ["runuser", "-u", self._run_as, "--"], (user.pw_uid, user.pw_gid)

    def _create(self) -> None:
        prefix, ids = self._runner()
        # mkdtemp makes a mode-700 folder; as root hand it to the server's user so it can
        # enter it (the parent, the system temp folder, is world-traversable).
        if self._root_wanted is not None:
            root = self._root_wanted
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        if ids:
            os.chown(root, *ids)
            reach = subprocess.run([*prefix, "test", "-w", str(root)], check=False)
            if self._root_wanted is not None and reach.returncode != 0:
                raise EmbeddedPostgresError(
                    f"PostgreSQL runs as {self._run_as!r}, who cannot reach {root} (a folder "
                    "above it is private): set CONVEYOR_DEV_DIR to a folder that user can "
                    "reach, or set DATABASE_URL"
                )
        self._root_dir = root
        self.data_dir = root / "data"
        self._run(
            [
                *prefix,
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        lines = [f"{k} = {v}" for k, v in self.settings.items()]
        # A kept cluster's folder may sit deep in a project, past the 107 bytes a Unix
        # socket's path may have: it listens on TCP only (which is all Conveyor uses).
        sockets = "" if self._root_wanted is not None else str(root)
        lines += [f"port = {self.port}", f"unix_socket_directories = '{sockets}'"]
        conf = "\n# conveyor embedded cluster\n" + "\n".join(lines) + "\n"
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write(conf)
        if self.trust_networks:
            hba = "".join(f"host all all {net} trust\n" for net in self.trust_networks)
            with (self.data_dir / "pg_hba.conf").open("a") as fh:
                fh.write("\n# conveyor embedded cluster: trust_networks\n" + hba)

    def _pg_ctl(self, *args: str) -> None:
        prefix, _ = self._runner()
        assert self.data_dir is not None
        self._run(
            [*prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args], "pg_ctl"
        )

    def _run(self, cmd: list[str], what: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            server_log = ""
            if self._root_dir is not None and self.log_file.exists():
                server_log = self.log_file.read_text()[-2000:]
            raise EmbeddedPostgresError(
                f"{what} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                + (f"\nserver log tail:\n{server_log}" if server_log else "")
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
