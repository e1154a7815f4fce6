"""`conveyor` — one console script, one sub-command per process."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from conveyor import remote
from jobs.errors import ConfigurationError, ConveyorError
from jobs.logging import configure_logging, get_logger
from jobs.settings import DatabaseSettings

app = typer.Typer(
    help="Conveyor: a Postgres-native background job system.",
    no_args_is_help=True,
    add_completion=False,
)
log = get_logger(__name__)


def _database_url() -> str:
    """DATABASE_URL, or else the database of the `conveyor dev` running from here."""
    from conveyor.dev import running_database_url

    url = DatabaseSettings().database_url or running_database_url()
    if not url:
        raise typer.BadParameter(
            "DATABASE_URL is not set and no `conveyor dev` (`make run`) is running from this "
            "folder. Point DATABASE_URL at your Postgres (postgresql://user:pass@host:5432/db), "
            "or start `make run` and run this again."
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
    app_ref: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="Your kinds too: package.module:attribute naming a conveyor.App "
            "(also CONVEYOR_APP).",
        ),
    ] = None,
) -> None:
    """Claim and run jobs until SIGTERM/SIGINT (a second signal exits at once).

    Every option can also be set as CONVEYOR_WORKER_<OPTION>, durations in seconds:
    CONVEYOR_WORKER_CONCURRENCY=64, CONVEYOR_WORKER_QUEUES=default,research,
    CONVEYOR_WORKER_LEASE_S=30. An option given on the command line wins."""

    from pydantic import ValidationError

    from jobs.app import AppError
    from worker.registry import registry_for
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
        "app": app_ref,
    }
    try:
        settings = WorkerSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(f"worker settings: {problems}") from None
    try:
        registry = registry_for(settings.app)
    except AppError as exc:
        raise typer.BadParameter(str(exc), param_hint="--app") from None
    run_worker(url, registry, settings)


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
    app_ref: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="Validate and document your kinds too: package.module:attribute naming a "
            "conveyor.App (also CONVEYOR_APP); give the workers the same.",
        ),
    ] = None,
) -> None:
    """Serve the REST API (uvicorn)."""
    from pydantic import ValidationError

    from api.server import serve
    from api.settings import ApiSettings, JwtSettings
    from jobs.app import AppError, load_app

    configure_logging()
    _database_url()  # fail here, with the message, rather than in every worker process
    if app_ref is not None:
        os.environ["CONVEYOR_APP"] = app_ref  # read again by each server process
    try:
        settings = ApiSettings()
        JwtSettings()
        if settings.app:
            load_app(settings.app)  # here, with the message, not in every server process
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(f"API settings: {problems}") from None
    except AppError as exc:
        raise typer.BadParameter(str(exc), param_hint="--app") from None
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

    from jobs.model import JobState
    from jobs.store import Store
    from stores.research import ResearchStore

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
                deleted["leaderboard snapshots"] = await ResearchStore(store.db).prune_snapshots(
                    keep_snapshots, store.settings.prune_batch
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
app.command()(remote.workers)
app.add_typer(remote.queues, name="queues")
app.add_typer(remote.quotas, name="quotas")
app.add_typer(remote.shares, name="shares")
app.add_typer(remote.kinds, name="kinds")
app.add_typer(remote.jobs, name="jobs")
app.add_typer(remote.dead, name="dead")

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys, name="keys")
CLI_ACTOR = "cli"
"""The actor of the audit events `conveyor keys` writes (it connects to the database, not
as a key)."""


def _with_keys(work: Any) -> Any:
    """`work(keys)` over a KeyStore of one connection to DATABASE_URL."""
    import asyncio

    from jobs.db import open_database
    from stores.keys import KeyStore

    async def main() -> Any:
        async with open_database(_database_url()) as db:
            return await work(KeyStore(db))

    return asyncio.run(main())


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="The principal: jobs submitted with it are its.")],
    role: Annotated[str, typer.Option(help="admin (sees every job) or user.")] = "user",
) -> None:
    """Create a key; the key itself is printed on the last line, once, and never stored.
    A name is letters, digits and _ . : - (up to 128), and never given to a second key."""
    try:
        _, key = _with_keys(lambda keys: keys.issue(name, role, by=CLI_ACTOR))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(f"created {role} key {name!r}; it is shown only now:")
    print(key)


@keys.command("list")
def keys_list() -> None:
    """Every key's name, role, creation and revocation time (never the key)."""
    for k in _with_keys(lambda keys: keys.all()):
        revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.name}\t{k.role}\tcreated {k.created_at:%Y-%m-%d %H:%M}\t{revoked}")


@keys.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key at once: its next request answers 401."""
    if not _with_keys(lambda keys: keys.revoke(name, by=CLI_ACTOR)):
        raise typer.BadParameter(f"no active key named {name!r}")
    print(f"revoked {name!r}")


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head) to DATABASE_URL."""
    from conveyor.dev import default_schedules
    from jobs.migrate import upgrade

    configure_logging()
    url = _database_url()
    direct = DatabaseSettings().session_url(url)
    if direct is None:
        raise ConfigurationError(
            "conveyor migrate needs a session of its own, which a transaction pooler does "
            "not give (DB_POOLER=transaction): set DATABASE_DIRECT_URL to Postgres itself, "
            "past the pooler, and run it again"
        )
    upgrade(direct)
    log.info("db.migrated", revision="head")
    default_schedules(url)


@app.command()
def dev(
    keep_running: Annotated[
        bool, typer.Option(help="Wait for Ctrl-C after start-up (off: start, migrate, stop).")
    ] = True,
    port: Annotated[
        int | None,
        typer.Option(envvar="PORT", help="The API's port (default 8000, or a free one)."),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the kept embedded cluster first.")
    ] = False,
    app_ref: Annotated[
        str | None,
        typer.Option("--app", help="Your kinds too (package.module:attribute; CONVEYOR_APP)."),
    ] = None,
) -> None:
    """Everything on one machine: an embedded Postgres kept in .conveyor/ when DATABASE_URL
    is unset, migrations, the API and a worker, until Ctrl-C."""
    from conveyor.dev import run

    configure_logging()
    if app_ref is not None:
        os.environ["CONVEYOR_APP"] = app_ref  # the API and the worker it starts read it
    run(keep_running=keep_running, port=port, fresh=fresh)


def main() -> None:
    try:
        app()
    except ConveyorError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
