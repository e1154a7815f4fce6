"""The platform's own schedules, created by `conveyor migrate` when absent.

They are created once and then belong to the operators: an existing schedule of the same
name, edited or disabled, is never touched. A default whose kind no worker knows yet is
left out (and reported), so a deployment never carries schedules that could only fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stores.schedules import ScheduleStore

Validate = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(kind, payload) -> the payload as the kind's model reads it; raises when invalid."""


class UniverseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    symbols: str = Field(
        default="AAPL,FB,GOOG,IBM,MSFT",
        description="the symbol universe the default ingestion schedule covers (comma list);"
        " the default is what the bundled sample prices hold",
    )
    price_provider: Literal["sample", "csv", "synthetic", "yahoo"] = Field(
        default="sample",
        description="where the default ingestion schedule fetches from (yahoo in production)",
    )

    @property
    def symbol_list(self) -> list[str]:
        return [s.strip().upper() for s in self.symbols.split(",") if s.strip()]


def platform_defaults(symbols: Iterable[str], provider: str = "sample") -> list[dict[str, Any]]:
    common = {"queue": "default", "priority": 0, "max_attempts": 5, "enabled": True}
    return [
        {
            **common,
            # 16:30 New York time, Monday to Friday: half an hour after the US close all year,
            # which a fixed UTC time (21:30 in winter) would miss by an hour in summer.
            "name": "prices.ingest.daily",
            "cron": "30 16 * * 1-5",
            "timezone": "America/New_York",
            "kind": "prices.ingest",
            "payload": {"symbols": list(symbols), "provider": provider},
            "catch_up_s": 6 * 3600,
            "backfill": False,
            # then the day's patterns, then a leaderboard refresh, in that order: each waits
            # for the one before to succeed (a failed ingest cancels both)
            "follow_ups": [
                {"kind": "patterns.analyze", "payload": {"symbols": list(symbols)}},
                {"kind": "leaderboard.refresh", "payload": {}},
            ],
        },
        {
            **common,
            "name": "leaderboard.refresh.hourly",
            "cron": "0 * * * *",
            "timezone": "UTC",
            "kind": "leaderboard.refresh",
            "payload": {},
            "catch_up_s": 600,
            "backfill": False,
        },
    ]


async def ensure_defaults(
    schedules: ScheduleStore,
    known_kinds: Iterable[str],
    validate: Validate,
    symbols: Iterable[str],
    provider: str = "sample",
) -> tuple[list[str], list[str]]:
    """Create the missing defaults; returns (created, left out because their kind is unknown)."""
    known = set(known_kinds)
    created, unknown = [], []
    for schedule in platform_defaults(symbols, provider):
        if schedule["kind"] not in known:
            unknown.append(schedule["name"])
            continue
        follow_ups = [
            {"kind": f["kind"], "payload": validate(f["kind"], f["payload"])}
            for f in schedule.get("follow_ups", [])
            if f["kind"] in known
        ]
        schedule = {
            **schedule,
            "payload": validate(schedule["kind"], schedule["payload"]),
            "follow_ups": follow_ups,
        }
        if await schedules.create(schedule) is not None:
            created.append(schedule["name"])
    return created, unknown
