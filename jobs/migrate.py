"""Run the Alembic migrations in `migrations/` against a database URL.

`conveyor migrate` is the one owner of schema changes; tests use the same functions.
Alembic's async env calls asyncio.run, so call these from synchronous code (or a thread).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from jobs.db import sqlalchemy_url


def _script_location() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `migrations` package is not installed next to `jobs`")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    if url:
        # ConfigParser treats % as interpolation; a password may contain one.
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
