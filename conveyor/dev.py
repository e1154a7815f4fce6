"""`conveyor dev` (`make run`): everything on one machine, and data that stays.

With no DATABASE_URL, the database is an embedded cluster kept in `.conveyor/postgres`
(`CONVEYOR_DEV_DIR` moves the folder): keys, schedules, jobs and research survive a restart,
the admin key printed at start-up is the same each time (kept in `.conveyor/admin-key`),
and the sample prices are ingested once. `--fresh` deletes the cluster first. While it runs,
`.conveyor/dev.json` says where it is, so `conveyor keys …`, `conveyor migrate` and the other
database commands find it without DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jobs.errors import ConveyorError
from jobs.logging import get_logger
from jobs.settings import DatabaseSettings

log = get_logger(__name__)

DEFAULT_PORT = 8000
SAMPLE_INGEST_KEY = "dev-sample-prices:adjusted"
"""Once per database. Named for the adjusted bars (migration 0008): a cluster kept from
before ingests them once more, replacing the as-traded ones."""


class DevError(ConveyorError):
    """`conveyor dev` cannot start; the message says what to do."""


def dev_dir() -> Path:
    return Path(os.environ.get("CONVEYOR_DEV_DIR", ".conveyor"))


def running_database_url(folder: Path | None = None) -> str | None:
    """The database of the `conveyor dev` running from this folder, if one is."""
    state = (folder or dev_dir()) / "dev.json"
    try:
        recorded = json.loads(state.read_text())
        os.kill(int(recorded["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    url = recorded.get("database_url")
    return url if isinstance(url, str) else None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(asked: int | None) -> tuple[int, str | None]:
    """The API's port, and a line to print when it is not the one expected."""
    from conveyor.embedded import free_port

    if asked is not None:
        if not port_free(asked):
            raise DevError(
                f"port {asked} is taken: choose another, e.g. `PORT={asked + 1} make run` "
                f"(or `conveyor dev --port {asked + 1}`)"
            )
        return asked, None
    if port_free(DEFAULT_PORT):
        return DEFAULT_PORT, None
    port = free_port()
    return port, f"port {DEFAULT_PORT} is taken, so the API listens on {port} (PORT= picks one)"


def run(*, keep_running: bool, port: int | None, fresh: bool) -> None:
    from conveyor.embedded import EmbeddedPostgres
    from jobs.migrate import upgrade

    folder = dev_dir()
    port, port_note = choose_port(port)
    url = DatabaseSettings().database_url
    embedded: EmbeddedPostgres | None = None
    if not url:
        if running_database_url(folder):
            raise DevError(
                f"a `conveyor dev` is already running from {folder.resolve()}: use it, or "
                "stop it (Ctrl-C in its terminal) first"
            )
        root = folder / "postgres"
        if fresh and root.exists():
            shutil.rmtree(root)
            print(f"Removed the embedded cluster in {root} (--fresh).", flush=True)
        kept = (root / "data" / "PG_VERSION").exists()
        embedded = EmbeddedPostgres(durable=True, root=root)
        what = "Starting the embedded Postgres kept in" if kept else "Creating a Postgres in"
        print(f"{what} {root} …", flush=True)
        url = embedded.start()
    children: list[subprocess.Popen[bytes]] = []
    state = folder / "dev.json"
    try:
        upgrade(url)
        log.info("db.migrated", revision="head")
        default_schedules(url)
        key = admin_key(url, folder / "admin-key")
        sample_prices(url)
        env = {**os.environ, "DATABASE_URL": url}
        # Own process groups: a terminal's Ctrl-C reaches only `dev`, which then sends each
        # child one SIGTERM (a second signal would make a worker exit at once).
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "worker"], env=env, start_new_session=True
        )
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", "api", "--port", str(port)],
            env=env,
            start_new_session=True,
        )
        children += [api_proc, worker_proc]
        api_url = f"http://127.0.0.1:{port}"
        wait_ready(api_url, api_proc)
        folder.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"pid": os.getpid(), "database_url": url, "api_url": api_url}))
        if port_note:
            print(port_note)
        print(f"Conveyor is up.\n  database: {url}" + ("  (embedded)" if embedded else ""))
        if embedded:
            print(f"            its data stays in {folder / 'postgres'} (--fresh starts empty)")
        print(f"  api:      {api_url}  (dashboard at /, docs at /docs; pid {api_proc.pid})")
        print(f"  worker:   pid {worker_proc.pid} (queue default)")
        print(f"  admin key: {key}")
        print("  the sample's daily prices are ingested on the first start; then try")
        print(f"    export CONVEYOR_API_URL={api_url} CONVEYOR_API_KEY={key}")
        print('    conveyor submit strategy.discover --payload \'{"symbols": ["IBM"]}\' --watch')
        print("Stop with Ctrl-C.", flush=True)
        if keep_running:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1.0):
                exited = [p for p in children if p.poll() is not None]
                if exited:
                    print(f"A process exited ({exited[0].returncode}); stopping.", flush=True)
                    break
    finally:
        alive = [p for p in children if p.poll() is None]
        if alive:
            print("Stopping the API and the worker (Ctrl-C again to kill them now)…", flush=True)
        for proc in alive:
            stop_child(proc)
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
        if embedded:
            embedded.stop()
            print(
                f"Stopped the embedded Postgres; its data stays in {folder / 'postgres'} "
                "(`make run ARGS=--fresh` starts empty).",
                flush=True,
            )


def wait_ready(api_url: str, api_proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until `/ready` answers 200: 'up' means a request would work now."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if api_proc.poll() is not None:
            raise DevError(f"the API exited ({api_proc.returncode}) before it was ready: see above")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise DevError(f"the API did not answer {api_url}/ready within {timeout_s:.0f} s")


def admin_key(url: str, kept: Path) -> str:
    """The admin key kept from an earlier start, while the database still knows it; else a
    new one, kept for the next start (readable by this user only)."""
    from jobs.db import open_database
    from stores.keys import KeyStore, hash_key

    earlier = kept.read_text().strip() if kept.exists() else None

    async def find_or_make() -> tuple[str, bool]:
        async with open_database(url) as db:
            keys = KeyStore(db)
            if earlier:
                key = earlier
                who = await keys.authenticate(hash_key(key))
                if who is not None and who[1] == "admin":
                    return key, False
            import secrets

            _, made = await keys.issue(f"dev-admin-{secrets.token_hex(3)}", "admin")
            return made, True

    key, made = asyncio.run(find_or_make())
    if made:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.touch(mode=0o600)
        kept.write_text(key + "\n")
    return key


def default_schedules(url: str) -> None:
    """The platform's schedules, created when absent, never overwritten."""
    from compute.specs import SPECS
    from jobs.db import open_database
    from kinds.schedules import UniverseSettings, ensure_defaults
    from stores.schedules import ScheduleStore

    def validate(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = SPECS[kind].model_validate(payload).model_dump(mode="json")
        return result

    async def main() -> tuple[list[str], list[str]]:
        async with open_database(url) as db:
            universe = UniverseSettings()
            return await ensure_defaults(
                ScheduleStore(db), SPECS, validate, universe.symbol_list, universe.price_provider
            )

    created, unknown = asyncio.run(main())
    log.info("schedules.defaults", created=created, left_out_unknown_kind=unknown)


def sample_prices(url: str) -> None:
    """Real prices from the first start on, so the research pages have something to show;
    the idempotency key makes it once per database."""
    from jobs.model import NewJob
    from jobs.store import Store
    from kinds.schedules import UniverseSettings

    async def enqueue() -> None:
        store = await Store.connect(url)
        try:
            payload = {"symbols": UniverseSettings().symbol_list, "provider": "sample"}
            await store.enqueue(
                NewJob(kind="prices.ingest", payload=payload, idempotency_key=SAMPLE_INGEST_KEY)
            )
        finally:
            await store.close()

    asyncio.run(enqueue())


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """One SIGTERM (graceful), wait out a worker's grace and then some; a further Ctrl-C, or
    the wait running out, kills its whole process group (a pool's children too)."""
    from worker.settings import WorkerSettings

    s = WorkerSettings()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C interrupts
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=s.grace_s + s.cancel_grace_s + 15)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
