"""structlog set-up shared by every process: JSON lines off a terminal, pretty lines on one.

Event names are stable `noun.verb` strings (`job.claimed`, `cron.fired`); values go in keys.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(*, json: bool | None = None, level: str | None = None) -> None:
    """`level` defaults to CONVEYOR_LOG_LEVEL, else INFO. Per-job lines (`job.claimed`,
    `job.succeeded`) cost a worker about a third of its CPU on no-op jobs; WARNING drops them."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    level = level or os.environ.get("CONVEYOR_LOG_LEVEL", "INFO")
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
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
