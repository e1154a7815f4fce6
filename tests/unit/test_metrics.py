"""The decisions behind /metrics and the charts: outcome labels, buckets, a tally that
survives a failed flush, per-minute buckets, percentiles from a histogram."""

from datetime import UTC, datetime, timedelta

import pytest

from api.stats import depth_lines, kind_stats, series_points
from jobs.metrics import (
    DURATION_BUCKETS_S,
    Quantile,
    Tally,
    bucket_of,
    bucket_start,
    cumulative,
    minute_of,
    outcome_label,
    quantile,
    waited_s,
    window_starts,
)
from jobs.model import EventType, JobState
from jobs.sql import DEPTH_MARKER
from worker.sampler import next_due


@pytest.mark.parametrize(
    ("state", "event", "label"),
    [
        (JobState.SUCCEEDED, None, "succeeded"),
        (JobState.DEAD, EventType.DEAD, "dead"),
        (JobState.CANCELLED, EventType.RETRY_SCHEDULED, "cancelled"),  # cancel won the row
        (JobState.QUEUED, EventType.RETRY_SCHEDULED, "retried"),
        (JobState.QUEUED, EventType.SNOOZED, "snoozed"),
        (JobState.QUEUED, EventType.RELEASED, "released"),
        (JobState.QUEUED, EventType.LEASE_LOST, "lease_expired"),
        (JobState.QUEUED, None, "retried"),
    ],
)
def test_outcome_label(state, event, label):
    assert outcome_label(state, event) == label


def test_buckets_are_upper_bounds_and_the_last_is_infinity():
    assert bucket_of(0) == 0
    assert bucket_of(DURATION_BUCKETS_S[0]) == 0  # le: the bound itself is inside
    assert bucket_of(DURATION_BUCKETS_S[0] * 1.01) == 1
    assert bucket_of(1e9) == len(DURATION_BUCKETS_S)
    assert cumulative([1, 0, 2, 3]) == [1, 1, 3, 6]


def test_a_tally_counts_and_times_and_takes_back_a_failed_flush():
    tally = Tally()
    tally.record("q", "k", "succeeded", 0.2)
    tally.record("q", "k", "succeeded", 2.0)
    tally.record("q", "k", "lease_expired", None)  # counted, not timed
    taken = tally.take()
    assert tally.counts == {}
    ok = taken[("q", "k", "succeeded")]
    assert (ok.finished, ok.duration_sum_s, sum(ok.buckets)) == (2, pytest.approx(2.2), 2)
    lost = taken[("q", "k", "lease_expired")]
    assert (lost.finished, sum(lost.buckets)) == (1, 0)

    tally.record("q", "k", "succeeded", 0.2)
    tally.put_back(taken)
    again = tally.take()[("q", "k", "succeeded")]
    assert (again.finished, sum(again.buckets)) == (3, 3)
    assert again.buckets[bucket_of(0.2)] == 2


def test_a_success_rate_leaves_cancelled_jobs_out_and_is_none_without_any():
    from jobs.metrics import success_rate

    assert success_rate(0, 0) is None
    assert success_rate(3, 1) == 0.75
    assert success_rate(0, 2) == 0.0


# -- job_minute: the minute of a finish, wait and run histograms, percentiles ---------------


def test_a_finish_falls_in_the_minute_that_holds_it():
    assert minute_of(1_700_000_000.0) == 1_699_999_980  # 13:33:20 → 13:33:00
    assert minute_of(1_699_999_980.0) == 1_699_999_980  # on the minute: that minute
    assert minute_of(1_700_000_039.999) == 1_699_999_980
    assert minute_of(1_700_000_040.0) == 1_700_000_040


def test_buckets_of_a_window_end_with_the_one_still_filling():
    now = datetime(2026, 12, 2, 10, 7, 31, tzinfo=UTC)
    hour = window_starts(now, 60, 1)
    assert (len(hour), hour[0], hour[-1]) == (
        60,
        datetime(2026, 12, 2, 9, 8, tzinfo=UTC),
        datetime(2026, 12, 2, 10, 7, tzinfo=UTC),
    )
    day = window_starts(now, 1440, 5)
    assert (len(day), day[-1]) == (288, datetime(2026, 12, 2, 10, 5, tzinfo=UTC))
    assert day[0] == datetime(2026, 12, 1, 10, 10, tzinfo=UTC)
    assert bucket_start(datetime(2026, 12, 2, 10, 4, 59, tzinfo=UTC), 5).minute == 0


def test_a_wait_runs_from_due_to_claimed_and_is_never_negative():
    due = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert waited_s(due, due + timedelta(seconds=2.5)) == 2.5
    assert waited_s(due, due - timedelta(microseconds=30)) == 0.0


def test_a_tally_keeps_each_minute_apart_and_puts_a_failed_flush_back():
    tally = Tally()
    tally.record("q", "k", "succeeded", 0.2, wait_s=0.02, at=600.0)
    tally.record("q", "k", "succeeded", 2.0, wait_s=7.0, at=659.9)
    tally.record("q", "k", "succeeded", 0.2, wait_s=0.0, at=660.0)
    tally.record("q", "k", "lease_expired", None, at=610.0)  # counted only
    tally.record("q", "k", "released", None, at=620.0)  # never started: counted only
    minutes = tally.take_minutes()
    assert tally.minutes == {}
    assert set(minutes) == {
        (600, "q", "k", "succeeded"),
        (660, "q", "k", "succeeded"),
        (600, "q", "k", "lease_expired"),
        (600, "q", "k", "released"),
    }
    first = minutes[(600, "q", "k", "succeeded")]
    assert (first.finished, first.run_sum_s, first.wait_sum_s) == (2, pytest.approx(2.2), 7.02)
    assert first.wait_buckets[bucket_of(0.02)] == 1 and first.wait_buckets[bucket_of(7.0)] == 1
    assert first.run_buckets[bucket_of(2.0)] == 1
    for untimed in ("lease_expired", "released"):
        m = minutes[(600, "q", "k", untimed)]
        assert (m.finished, sum(m.wait_buckets), sum(m.run_buckets)) == (1, 0, 0)
    assert tally.take()[("q", "k", "succeeded")].finished == 3  # job_stats as before

    tally.record("q", "k", "succeeded", 30.0, wait_s=1.0, at=630.0)
    tally.put_back_minutes(minutes)
    again = tally.take_minutes()
    merged = again[(600, "q", "k", "succeeded")]
    assert (merged.finished, sum(merged.wait_buckets), sum(merged.run_buckets)) == (3, 3, 3)
    assert merged.run_buckets[bucket_of(30.0)] == 1
    assert again[(660, "q", "k", "succeeded")].finished == 1


def test_percentiles_interpolate_inside_the_bucket_that_holds_the_rank():
    buckets = [0] * (len(DURATION_BUCKETS_S) + 1)
    assert quantile(buckets, 0.5) is None
    i = DURATION_BUCKETS_S.index(1.0)  # the bucket (0.5, 1.0]
    buckets[i] = 10
    assert quantile(buckets, 0.5) == Quantile(0.75)
    assert quantile(buckets, 0.95).seconds == pytest.approx(0.975)
    buckets[0] = 10  # ten more in [0, 0.005]: the median is the first bucket's top
    assert quantile(buckets, 0.5) == Quantile(0.005)
    assert quantile(buckets, 0.25).seconds == pytest.approx(0.0025)
    buckets[-1] = 80  # eighty past the last bound
    assert quantile(buckets, 0.95) == Quantile(DURATION_BUCKETS_S[-1], over=True)
    assert quantile(buckets, 0.1) == Quantile(0.005)


def test_a_kinds_line_adds_its_outcomes_and_histograms():
    n = len(DURATION_BUCKETS_S) + 1
    one = [0] * n
    one[bucket_of(0.3)] = 1
    over = [0] * n
    over[-1] = 1
    rows = [
        {
            "kind": "b",
            "outcome": "succeeded",
            "finished": 3,
            "wait_buckets": one,
            "run_buckets": one,
        },
        {"kind": "b", "outcome": "dead", "finished": 1, "wait_buckets": one, "run_buckets": over},
        {"kind": "b", "outcome": "retried", "finished": 2, "wait_buckets": one, "run_buckets": one},
        {
            "kind": "a",
            "outcome": "lease_expired",
            "finished": 1,
            "wait_buckets": [0] * n,
            "run_buckets": [0] * n,
        },
    ]
    a, b = kind_stats(rows)
    assert (a.kind, a.finished, a.lease_expired, a.failure_rate, a.wait_p50_s) == (
        "a",
        0,
        1,
        None,
        None,
    )
    assert (b.kind, b.finished, b.succeeded, b.dead, b.retried) == ("b", 4, 3, 1, 2)
    assert b.failure_rate == 0.25
    assert 0.1 < b.wait_p50_s <= 0.5 and 0.1 < b.run_p50_s <= 0.5
    assert b.run_p95_s == DURATION_BUCKETS_S[-1] and b.over_last_bound == ["run_p95_s"]


def test_a_series_has_every_bucket_and_depth_is_zero_only_where_sampled():
    t0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    buckets = [t0 + timedelta(minutes=i) for i in range(3)]
    n = len(DURATION_BUCKETS_S) + 1
    row = {
        "bucket": buckets[1],
        "outcome": "dead",
        "finished": 2,
        "wait_buckets": [0] * n,
        "run_buckets": [0] * n,
    }
    late = {**row, "bucket": t0 + timedelta(minutes=9)}  # past the window: left out
    points = series_points(buckets, [row, late])
    assert [p.dead for p in points] == [0, 2, 0]
    assert [p.bucket for p in points] == buckets

    rows = [
        {"bucket": buckets[0], "queue": DEPTH_MARKER, "queued": 0, "running": 0},
        {"bucket": buckets[0], "queue": "q", "queued": 5, "running": 1},
        {"bucket": buckets[1], "queue": DEPTH_MARKER, "queued": 0, "running": 0},
    ]
    (line,) = depth_lines(buckets, rows)
    assert (line.queue, line.queued, line.running) == ("q", [5, 0, None], [1, 0, None])
    assert depth_lines(buckets, rows[:1]) == []


def test_a_worker_asks_for_a_depth_sample_again_just_after_the_next_minute():
    assert next_due(100.0, 12.5) == pytest.approx(112.55)
    assert next_due(100.0, -0.01) == pytest.approx(100.05)  # a clock step: ask soon anyway
