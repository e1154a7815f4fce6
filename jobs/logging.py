"""structlog set-up shared by every process: JSON lines off a terminal, pretty lines on one.

Event names are stable `noun.verb` strings (`job.claimed`, `cron.fired`); values go in keys.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_level = logging.NOTSET  # until configure_logging: structlog's default logs everything


def enabled(level: str) -> bool:
    """Whether lines of `level` are written: a hot loop asks once instead of calling a
    logger that drops the line (about 1 µs a call, three calls per no-op job)."""
    return logging.getLevelNamesMapping()[level.upper()] >= _level


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """`level` defaults to CONVEYOR_LOG_LEVEL, else INFO. Per-job lines (`job.claimed`,
    `job.succeeded`) cost a worker about a third of its CPU on no-op jobs; WARNING drops them."""
    global _level
    as_json = (not sys.stderr.isatty()) if json is None else json
    level = level or os.environ.get("CONVEYOR_LOG_LEVEL", "INFO")
    _level = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
