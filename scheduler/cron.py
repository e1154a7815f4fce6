"""Fire times: pure functions of a cron expression, a timezone and an instant.

Expressions have 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
first, with crontab's meanings: day-of-week 0 and 7 are Sunday, and when both day fields
are restricted a day matches either (as in Vixie cron). APScheduler's CronTrigger does the
field matching, on local wall-clock time; the mapping of wall-clock matches to instants is
ours, because that is where daylight saving time lives:

- A wall-clock time that happens twice (the hour repeated when clocks go back) fires once,
  at its first occurrence.
- A wall-clock time that does not exist (the hour skipped when clocks go forward) fires
  shifted forward by the gap, as Python's zoneinfo reads it: 02:30 on a spring-forward night
  in New York fires at 03:30 EDT. If that instant is also a match of its own (03:30 with an
  every-minute schedule), it is one fire: fire times are instants, and each is enqueued once.

All instants in and out are timezone-aware; results are in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_TOKEN = re.compile(r"^(\*|\d+|[a-z]{3})(?:-(\d+|[a-z]{3}))?(?:/(\d+))?$")
_TICK = timedelta(microseconds=1)


class CronError(ValueError):
    """The expression or timezone is not usable; the message says what to fix."""


def _day_number(token: str) -> int:
    if token.isdigit():
        n = int(token)
        if not 0 <= n <= 7:
            raise CronError(f"day-of-week {n} is out of range (0-7, 0 and 7 are Sunday)")
        return n % 7
    if token not in _DAY_NAMES:
        raise CronError(f"unknown day-of-week {token!r} (use 0-7 or sun, mon, …, sat)")
    return _DAY_NAMES.index(token)


def _days_of_week(field: str) -> list[str]:
    """A crontab day-of-week field as day names. APScheduler numbers days from Monday, so
    numbers cannot be passed through: `1-5` there would mean Tuesday to Saturday."""
    days: set[int] = set()
    for part in field.lower().split(","):
        m = _DOW_TOKEN.match(part)
        if not m:
            raise CronError(f"cannot read day-of-week {part!r}")
        start, end, step = m.groups()
        if start == "*":
            first, last = 0, 6
        else:
            first = _day_number(start)
            last = _day_number(end) if end else (6 if step else first)
            if end and end.isdigit() and int(end) == 7:
                last = 7  # `5-7`: Friday to Sunday
        if last < first:
            raise CronError(f"day-of-week range {part!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, int(step or 1)))
    return [_DAY_NAMES[d] for d in sorted(days)]


def _trigger(second: str, minute: str, hour: str, day: str, month: str, dow: str) -> CronTrigger:
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=",".join(_days_of_week(dow)) if dow != "*" else "*",
            timezone=UTC,  # matching runs on naive wall-clock time, presented as UTC
        )
    except CronError:
        raise
    except ValueError as exc:
        raise CronError(str(exc)) from None


@dataclass(frozen=True)
class Cron:
    expression: str
    timezone: str
    zone: ZoneInfo = field(repr=False)
    triggers: tuple[CronTrigger, ...] = field(repr=False)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(
                f"unknown timezone {timezone!r}: use an IANA name such as UTC or America/New_York"
            ) from None
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise CronError(
                f"a cron expression has 5 fields (minute hour day month day-of-week) or 6 "
                f"with seconds first; {expression!r} has {len(fields)}"
            )
        second, minute, hour, day, month, dow = fields
        triggers: tuple[CronTrigger, ...]
        if day != "*" and dow != "*":  # crontab: either day field may match
            triggers = (
                _trigger(second, minute, hour, day, month, "*"),
                _trigger(second, minute, hour, "*", month, dow),
            )
        else:
            triggers = (_trigger(second, minute, hour, day, month, dow),)
        return cls(expression, timezone, zone, triggers)

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first wall-clock match strictly after `wall` (naive)."""
        after = (wall + _TICK).replace(tzinfo=UTC)
        found = [t.get_next_fire_time(None, after) for t in self.triggers]
        matches = [f for f in found if f is not None]
        return min(matches).replace(tzinfo=None) if matches else None

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire strictly after `instant` (None: the expression never fires again,
        e.g. February 30th)."""
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        for _ in range(10_000):  # > the wall-clock matches inside one repeated hour
            match = self._next_wall(wall)
            if match is None:
                return None
            fire = match.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            if fire > instant:
                return fire
            wall = match  # a first occurrence already past: in the repeated hour
        raise CronError(f"{self.expression!r} found no fire after {instant.isoformat()}")

    def fires(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every fire in (after, until], in order."""
        fire = self.next_after(after)
        while fire is not None and fire <= until:
            yield fire
            fire = self.next_after(fire)


SKIP_COUNT_LIMIT = 100_000
"""Fires older than the catch-up window are counted up to this many, not enumerated
without end (a per-second schedule idle for a month)."""


@dataclass(frozen=True)
class Due:
    """What one pass of the scheduler does for one schedule."""

    enqueue: list[datetime]
    """Fire times to enqueue, oldest first."""
    coalesced: int
    """Missed fires folded into the latest one (not enqueued themselves)."""
    skipped: int
    """Fires older than the catch-up window, not enqueued (at most SKIP_COUNT_LIMIT)."""
    last_fire: datetime | None
    """The latest fire at or before now, enqueued or not: where the next pass starts (the
    start of the catch-up window when more fires were skipped than were counted)."""


def due(
    cron: Cron,
    *,
    since: datetime,
    now: datetime,
    catch_up_s: float,
    late_s: float,
    backfill: bool = False,
) -> Due:
    """The fires in (since, now] and what becomes of each.

    - on time: less than `late_s` old; each is enqueued (a slow pass loses no tick);
    - missed: older, but inside the catch-up window; enqueued each with `backfill`, or else
      only the latest of them (coalesced);
    - skipped: older than the catch-up window; counted, not enqueued.
    """
    window_start = now - timedelta(seconds=catch_up_s)
    late_start = now - timedelta(seconds=late_s)
    skipped, last = 0, None
    if since < window_start:
        for fire in cron.fires(since, window_start):
            skipped, last = skipped + 1, fire
            if skipped >= SKIP_COUNT_LIMIT:
                last = window_start
                break
    recent = list(cron.fires(max(since, window_start), now))
    missed = [f for f in recent if f <= late_start]
    on_time = [f for f in recent if f > late_start]
    if backfill or not missed:
        enqueue, coalesced = missed + on_time, 0
    else:
        enqueue, coalesced = [missed[-1], *on_time], len(missed) - 1
    if recent:
        last = recent[-1]
    return Due(enqueue=enqueue, coalesced=coalesced, skipped=skipped, last_fire=last)
