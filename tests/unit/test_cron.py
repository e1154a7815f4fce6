"""Fire-time maths with a frozen clock: crontab meanings, DST, catch-up and coalescing."""

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.cron import Cron, CronError, due


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def take(cron: Cron, after: datetime, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        after = cron.next_after(after)
        out.append(after)
    return out


def test_weekdays_use_crontab_numbering():
    cron = Cron.parse("30 21 * * 1-5")  # Monday to Friday, not APScheduler's Tue-Sat
    fires = take(cron, utc(2026, 11, 21, 22, 0), 6)  # from Saturday night
    assert [f.strftime("%a %H:%M") for f in fires] == [
        "Mon 21:30",
        "Tue 21:30",
        "Wed 21:30",
        "Thu 21:30",
        "Fri 21:30",
        "Mon 21:30",
    ]
    assert Cron.parse("0 12 * * 0").next_after(utc(2026, 11, 22, 0)) == utc(2026, 11, 22, 12)
    assert Cron.parse("0 12 * * 7").next_after(utc(2026, 11, 22, 0)) == utc(2026, 11, 22, 12)
    weekend = take(Cron.parse("0 0 * * 5-7"), utc(2026, 11, 23), 3)
    assert [f.strftime("%a") for f in weekend] == ["Fri", "Sat", "Sun"]
    assert [f.strftime("%a") for f in take(Cron.parse("0 0 * * */2"), utc(2026, 11, 22), 4)] == [
        "Tue",
        "Thu",
        "Sat",
        "Sun",
    ]


def test_six_fields_put_seconds_first_and_next_is_strictly_after():
    cron = Cron.parse("*/10 * * * * *")
    assert take(cron, utc(2026, 1, 1, 0, 0, 0), 3) == [
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 30),
    ]
    assert cron.next_after(utc(2026, 1, 1, 0, 0, 9, 999999)) == utc(2026, 1, 1, 0, 0, 10)


def test_day_of_month_or_day_of_week_as_in_vixie_cron():
    fires = take(Cron.parse("0 0 13 * 5"), utc(2026, 2, 1), 4)  # the 13th, or any Friday
    assert [f.date().isoformat() for f in fires] == [
        "2026-02-06",
        "2026-02-13",  # a Friday the 13th fires once
        "2026-02-20",
        "2026-02-27",
    ]


@pytest.mark.parametrize(
    ("expression", "timezone", "says"),
    [
        ("* * * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "61"),
        ("0 0 * * 8", "UTC", "out of range"),
        ("0 0 * * 5-1", "UTC", "backwards"),
        ("0 0 * * funday", "UTC", "day-of-week"),
        ("0 0 * * *", "Mars/Olympus", "unknown timezone"),
    ],
)
def test_bad_expressions_and_zones_say_what_is_wrong(expression, timezone, says):
    with pytest.raises(CronError, match=says):
        Cron.parse(expression, timezone)


NEW_YORK = "America/New_York"


def test_a_time_in_the_skipped_hour_fires_shifted_forward_once():
    # 2026-03-08: clocks go from 02:00 EST to 03:00 EDT.
    daily = Cron.parse("30 2 * * *", NEW_YORK)
    assert take(daily, utc(2026, 3, 7, 12), 3) == [
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30),
    ]
    quarter = list(
        Cron.parse("*/15 * * * *", NEW_YORK).fires(utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
    )
    assert quarter == [
        utc(2026, 3, 8, 6, 15),  # 01:15 EST
        utc(2026, 3, 8, 6, 30),
        utc(2026, 3, 8, 6, 45),
        utc(2026, 3, 8, 7, 0),  # 02:00 does not exist: 03:00 EDT, once
        utc(2026, 3, 8, 7, 15),
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 8, 7, 45),
        utc(2026, 3, 8, 8, 0),
    ]


def test_a_time_in_the_repeated_hour_fires_once_at_its_first_occurrence():
    # 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST; 01:xx happens twice.
    daily = Cron.parse("30 1 * * *", NEW_YORK)
    assert take(daily, utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; not again at 01:30 EST (06:30Z)
        utc(2026, 11, 2, 6, 30),
    ]
    fires = list(
        Cron.parse("*/15 * * * *", NEW_YORK).fires(utc(2026, 11, 1, 5), utc(2026, 11, 1, 7))
    )
    assert fires == [
        utc(2026, 11, 1, 5, 15),  # 01:15 EDT
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 5, 45),
        utc(2026, 11, 1, 7, 0),  # 02:00 EST: the second 01:00-01:59 fires nothing
    ]
    # Asked from inside the repeated hour's second pass, it still looks forward.
    assert daily.next_after(utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6, 30)


MINUTELY = Cron.parse("* * * * *")
NOW = utc(2026, 11, 22, 12, 0, 30)


def test_on_time_fires_are_each_enqueued():
    d = due(MINUTELY, since=utc(2026, 11, 22, 11, 59), now=NOW, catch_up_s=600, late_s=5)
    assert (d.enqueue, d.coalesced, d.skipped) == ([utc(2026, 11, 22, 12, 0)], 0, 0)
    assert d.last_fire == utc(2026, 11, 22, 12, 0)
    secondly = Cron.parse("* * * * * *")  # a pass two seconds late loses no tick
    d = due(secondly, since=NOW - timedelta(seconds=3), now=NOW, catch_up_s=600, late_s=5)
    assert d.enqueue == [NOW - timedelta(seconds=2), NOW - timedelta(seconds=1), NOW]


def test_after_downtime_missed_fires_coalesce_and_older_ones_are_skipped():
    since = utc(2026, 11, 22, 11, 30)  # last fire before half an hour of downtime
    d = due(MINUTELY, since=since, now=NOW, catch_up_s=600, late_s=5)
    assert d.enqueue == [utc(2026, 11, 22, 12, 0)]  # only the latest
    assert d.coalesced == 9  # 11:51 … 11:59
    assert d.skipped == 20  # 11:31 … 11:50 are older than ten minutes
    assert d.last_fire == utc(2026, 11, 22, 12, 0)
    back = due(MINUTELY, since=since, now=NOW, catch_up_s=600, late_s=5, backfill=True)
    assert len(back.enqueue) == 10 and back.coalesced == 0 and back.skipped == 20


def test_nothing_due_keeps_the_last_fire_and_a_huge_gap_is_counted_up_to_a_limit():
    d = due(MINUTELY, since=utc(2026, 11, 22, 12, 0), now=NOW, catch_up_s=600, late_s=5)
    assert d.enqueue == [] and d.last_fire is None
    secondly = Cron.parse("* * * * * *")
    month = due(secondly, since=NOW - timedelta(days=30), now=NOW, catch_up_s=1, late_s=0.5)
    assert month.skipped == 100_000 and len(month.enqueue) == 1
