"""`conveyor` — one console script, one sub-command per process."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated

import typer

from jobs.embedded import EmbeddedPostgres
from jobs.errors import ConveyorError
from jobs.logging import configure_logging, get_logger
from jobs.migrate import upgrade
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


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head) to DATABASE_URL."""
    configure_logging()
    url = _database_url()
    upgrade(url)
    log.info("db.migrated", revision="head")


@app.command()
def dev(
    keep_running: Annotated[
        bool, typer.Option(help="Wait for Ctrl-C after start-up (off: start, migrate, stop).")
    ] = True,
) -> None:
    """Everything on one machine: embedded Postgres when DATABASE_URL is unset, migrations,
    and every process Conveyor has, until Ctrl-C."""
    configure_logging()
    url = DatabaseSettings().database_url
    embedded: EmbeddedPostgres | None = None
    if not url:
        embedded = EmbeddedPostgres(durable=True)
        url = embedded.start()
    try:
        upgrade(url)
        log.info("db.migrated", revision="head")
        print(f"Conveyor is up.\n  database: {url}" + ("  (embedded)" if embedded else ""))
        print("  processes: postgres, migrations applied (api and worker arrive with their issues)")
        print("Stop with Ctrl-C.", flush=True)
        if keep_running:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
    finally:
        if embedded:
            embedded.destroy()
            print("Stopped the embedded Postgres and removed its data.", flush=True)


def main() -> None:
    try:
        app()
    except ConveyorError as exc:
        print(f"conveyor: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
