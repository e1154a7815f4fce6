"""Run the Alembic migrations in `migrations/` against a database URL.

`conveyor migrate` is the one owner of schema changes; tests use the same functions.
Alembic's async env calls asyncio.run, so call these from synchronous code (or a thread).
Alembic (and SQLAlchemy under it) is imported on first use: the API imports this module
for its readiness check, and loading them would add about 0.4 s to every API start.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.db import sqlalchemy_url

if TYPE_CHECKING:
    from alembic.config import Config


def _script_location() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `migrations` package is not installed next to `jobs`")
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    if url:
        # ConfigParser treats % as interpolation; a password may contain one.
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


@functools.cache
def head_revision() -> str | None:
    """The code's migration head, read from `migrations/` once per process (a deploy that
    brings new migrations starts new processes)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
