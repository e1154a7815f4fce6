"""`conveyor` — one console script, one sub-command per process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Annotated, Any

import typer

from conveyor import remote
from jobs.errors import ConveyorError
from jobs.logging import configure_logging, get_logger
from jobs.settings import DatabaseSettings

app = typer.Typer(
    help="Conveyor: a Postgres-native background job system.",
    no_args_is_help=True,
    add_completion=False,
)
log = get_logger("conveyor")


def _database_url() -> str:
    url = DatabaseSettings().database_url
    if not url:
        raise typer.BadParameter(
            "DATABASE_URL is not set. Point it at your Postgres "
            "(postgresql://user:pass@host:5432/db), or use `conveyor dev` for an embedded one."
        )
    return url


def parse_duration(text: str) -> float:
    """`30s`, `500ms`, `2m`, `1h`, `7d` or plain seconds (`30`, `0.5`) -> seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    value = text.strip().lower()
    for suffix in ("ms", "s", "m", "h", "d"):
        if value.endswith(suffix):
            number, scale = value[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a duration: try 30s, 500ms, 2m, 1h or 7d"
        ) from None
    if seconds < 0:
        raise typer.BadParameter(f"{text!r}: a duration cannot be negative")
    return seconds


@app.command()
def worker(
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues to claim from. (default: default)")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at once. (default: 16)")
    ] = None,
    processes: Annotated[
        int | None, typer.Option(min=0, help="Child processes for CPU-bound kinds. (default: 2)")
    ] = None,
    lease: Annotated[
        str | None, typer.Option(help="Lease length, e.g. 30s. (default: 30s)")
    ] = None,
    grace: Annotated[
        str | None, typer.Option(help="On SIGTERM, time to let jobs finish. (default: 30s)")
    ] = None,
    poll: Annotated[
        str | None, typer.Option(help="Claim at least this often without NOTIFY. (default: 1s)")
    ] = None,
    reap_every: Annotated[str | None, typer.Option(help="Reaper period. (default: 5s)")] = None,
    cron: Annotated[
        bool | None,
        typer.Option(
            help="Run the cron scheduler (every worker may; none duplicates). (default: cron)"
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_LOG_LEVEL",
            help="DEBUG, INFO, WARNING or ERROR; WARNING drops the per-job lines. (default: INFO)",
        ),
    ] = None,
) -> None:
    """Claim and run jobs until SIGTERM/SIGINT (a second signal exits at once).

    Every option can also be set as CONVEYOR_WORKER_<OPTION>, durations in seconds:
    CONVEYOR_WORKER_CONCURRENCY=64, CONVEYOR_WORKER_QUEUES=default,research,
    CONVEYOR_WORKER_LEASE_S=30. An option given on the command line wins."""

    from pydantic import ValidationError

    from worker.registry import default_registry
    from worker.runtime import run_worker
    from worker.settings import WorkerSettings

    if log_level is not None and log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise typer.BadParameter(
            f"{log_level!r} is not a log level: use DEBUG, INFO, WARNING or ERROR",
            param_hint="--log-level",
        )
    configure_logging(level=log_level)
    url = _database_url()
    given: dict[str, Any] = {
        "queues": queues and [q.strip() for q in queues.split(",") if q.strip()],
        "concurrency": concurrency,
        "processes": processes,
        "lease_s": lease and parse_duration(lease),
        "grace_s": grace and parse_duration(grace),
        "poll_interval_s": poll and parse_duration(poll),
        "reap_interval_s": reap_every and parse_duration(reap_every),
        "cron": cron,
    }
    try:
        settings = WorkerSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(f"worker settings: {problems}") from None
    run_worker(url, default_registry(), settings)


@app.command()
def api(
    host: Annotated[
        str, typer.Option(envvar="CONVEYOR_API_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="PORT", help="Port (also $PORT, as Railway sets it).")
    ] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            envvar="CONVEYOR_API_WORKERS",
            min=1,
            help="Server processes (uvicorn workers); about one per core the API may use.",
        ),
    ] = 1,
) -> None:
    """Serve the REST API (uvicorn)."""
    from pydantic import ValidationError

    from api.server import serve
    from api.settings import ApiSettings, JwtSettings

    configure_logging()
    _database_url()  # fail here, with the message, rather than in every worker process
    try:
        ApiSettings(), JwtSettings()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(f"API settings: {problems}") from None
    serve(host, port, workers)


@app.command()
def prune(
    succeeded: Annotated[str, typer.Option(help="Keep succeeded jobs this long.")] = "7d",
    cancelled: Annotated[str, typer.Option(help="Keep cancelled jobs this long.")] = "7d",
    dead: Annotated[str, typer.Option(help="Keep dead jobs this long.")] = "30d",
    leaderboards: Annotated[
        str | None,
        typer.Option(
            help="Keep leaderboard snapshots this long (the latest always stays). "
            "Default: keep them all."
        ),
    ] = None,
) -> None:
    """Delete finished jobs (with their events) older than the given ages, and with
    --leaderboards old leaderboard snapshots, in small batches that never hold long locks.
    Run it from cron or a scheduled task."""
    import asyncio
    from datetime import timedelta

    from compute.results import prune_snapshots
    from jobs.model import JobState
    from jobs.store import Store

    configure_logging()
    ages = {
        JobState.SUCCEEDED: timedelta(seconds=parse_duration(succeeded)),
        JobState.CANCELLED: timedelta(seconds=parse_duration(cancelled)),
        JobState.DEAD: timedelta(seconds=parse_duration(dead)),
    }

    keep_snapshots = timedelta(seconds=parse_duration(leaderboards)) if leaderboards else None

    async def main() -> dict[str, int]:
        store = await Store.connect(_database_url())
        try:
            deleted = {state.value: n for state, n in (await store.prune(ages)).items()}
            if keep_snapshots is not None:
                deleted["leaderboard snapshots"] = await prune_snapshots(
                    store.pool, keep_snapshots, store.settings.prune_batch
                )
            return deleted
        finally:
            await store.close()

    deleted = asyncio.run(main())
    typer.echo(", ".join(f"{what}: {n}" for what, n in deleted.items()))


@app.command()
def health(
    port: Annotated[int, typer.Option(envvar="PORT", help="The API's port.")] = 8000,
) -> None:
    """Exit 0 when the API in this container answers /health (the image's HEALTHCHECK)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            ok = r.status == 200
    except OSError as exc:
        typer.echo(f"unhealthy: {exc}", err=True)
        raise typer.Exit(1) from None
    if not ok:
        raise typer.Exit(1)


app.command()(remote.submit)
app.command()(remote.watch)
app.command()(remote.queues)
app.command()(remote.workers)
app.add_typer(remote.jobs, name="jobs")
app.add_typer(remote.dead, name="dead")

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys, name="keys")


def _with_pool(work: Any) -> Any:
    import asyncio

    import asyncpg

    from jobs.db import asyncpg_dsn

    async def main() -> Any:
        conn = await asyncpg.connect(asyncpg_dsn(_database_url()))
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="The principal: jobs submitted with it are its.")],
    role: Annotated[str, typer.Option(help="admin (sees every job) or user.")] = "user",
) -> None:
    """Create a key; the key itself is printed on the last line, once, and never stored."""
    from api.keys import create_key

    try:
        key = _with_pool(lambda conn: create_key(conn, name, role))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(f"created {role} key {name!r}; it is shown only now:")
    print(key)


@keys.command("list")
def keys_list() -> None:
    """Every key's name, role, creation and revocation time (never the key)."""
    from api.keys import list_keys

    for k in _with_pool(list_keys):
        revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.name}\t{k.role}\tcreated {k.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@keys.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key at once: its next request answers 401."""
    from api.keys import revoke_key

    if not _with_pool(lambda conn: revoke_key(conn, name)):
        raise typer.BadParameter(f"no active key named {name!r}")
    print(f"revoked {name!r}")


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head) to DATABASE_URL."""
    from jobs.migrate import upgrade

    configure_logging()
    url = _database_url()
    upgrade(url)
    log.info("db.migrated", revision="head")
    _ensure_default_schedules(url)


def _ensure_default_schedules(url: str) -> None:
    """The platform's schedules, created when absent, never overwritten."""
    import asyncio

    import asyncpg

    from compute.specs import SPECS
    from jobs.db import asyncpg_dsn
    from scheduler.defaults import UniverseSettings, ensure_defaults

    def validate(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = SPECS[kind].model_validate(payload).model_dump(mode="json")
        return result

    async def main() -> tuple[list[str], list[str]]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            universe = UniverseSettings()
            return await ensure_defaults(
                conn, SPECS, validate, universe.symbol_list, universe.price_provider
            )
        finally:
            await conn.close()

    created, unknown = asyncio.run(main())
    log.info("schedules.defaults", created=created, left_out_unknown_kind=unknown)


@app.command()
def dev(
    keep_running: Annotated[
        bool, typer.Option(help="Wait for Ctrl-C after start-up (off: start, migrate, stop).")
    ] = True,
    port: Annotated[int, typer.Option(envvar="PORT", help="The API's port.")] = 8000,
) -> None:
    """Everything on one machine: embedded Postgres when DATABASE_URL is unset, migrations,
    and every process Conveyor has, until Ctrl-C."""
    from jobs.embedded import EmbeddedPostgres
    from jobs.migrate import upgrade

    configure_logging()
    url = DatabaseSettings().database_url
    embedded: EmbeddedPostgres | None = None
    if not url:
        embedded = EmbeddedPostgres(durable=True)
        url = embedded.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(url)
        log.info("db.migrated", revision="head")
        _ensure_default_schedules(url)
        key = _dev_admin_key(url)
        _dev_sample_prices(url)
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
        print(f"Conveyor is up.\n  database: {url}" + ("  (embedded)" if embedded else ""))
        print(f"  api:      http://127.0.0.1:{port}  (docs at /docs; pid {api_proc.pid})")
        print(f"  worker:   pid {worker_proc.pid} (queue default)")
        print(f"  admin key for this session: {key}")
        print(
            "  the sample's daily prices are being ingested; then try (with CONVEYOR_API_KEY set)"
        )
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
        for proc in children:
            if proc.poll() is None:
                _stop_child(proc)
        if embedded:
            embedded.destroy()
            print("Stopped the embedded Postgres and removed its data.", flush=True)


def _dev_sample_prices(url: str) -> None:
    """Real prices from the first start on, so the research pages have something to show;
    the idempotency key makes it once per database."""
    import asyncio

    from jobs.model import NewJob
    from jobs.store import Store
    from scheduler.defaults import UniverseSettings

    async def enqueue() -> None:
        store = await Store.connect(url)
        try:
            payload = {"symbols": UniverseSettings().symbol_list, "provider": "sample"}
            await store.enqueue(
                NewJob(kind="prices.ingest", payload=payload, idempotency_key="dev-sample-prices")
            )
        finally:
            await store.close()

    asyncio.run(enqueue())


def _dev_admin_key(url: str) -> str:
    import asyncio
    import secrets

    import asyncpg

    from api.keys import create_key
    from jobs.db import asyncpg_dsn

    async def make() -> str:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await create_key(conn, f"dev-admin-{secrets.token_hex(3)}", "admin")
        finally:
            await conn.close()

    return asyncio.run(make())


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    """One SIGTERM (graceful), wait out a worker's grace and then some; a further Ctrl-C, or
    the wait running out, kills its whole process group (a pool's children too)."""
    from worker.settings import WorkerSettings

    s = WorkerSettings()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C interrupts
    proc.send_signal(signal.SIGTERM)
    print("Stopping the worker (Ctrl-C again to kill it now)…", flush=True)
    try:
        proc.wait(timeout=s.grace_s + s.cancel_grace_s + 15)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    try:
        app()
    except ConveyorError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
