"""The decisions behind /metrics: outcome labels, buckets, a tally that survives a failed
flush."""

import pytest

from jobs.metrics import DURATION_BUCKETS_S, Tally, bucket_of, cumulative, outcome_label
from jobs.model import EventType, JobState


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
