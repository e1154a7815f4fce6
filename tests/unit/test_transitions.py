from datetime import UTC, datetime, timedelta

import pytest

from jobs.backoff import Backoff
from jobs.model import EventType, JobState
from jobs.transitions import (
    TRACEBACK_TAIL_CHARS,
    Cancelled,
    Failure,
    LeaseExpired,
    Release,
    Snoozed,
    Success,
    Timeout,
    decide,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BACKOFF = Backoff(base_s=1.0, cap_s=60.0, jitter=0.2)


def run(outcome, attempt=1, max_attempts=3, rand=0.5):
    return decide(
        attempt=attempt,
        max_attempts=max_attempts,
        outcome=outcome,
        now=NOW,
        backoff=BACKOFF,
        rand=rand,
    )


def test_success_finishes_with_the_result_and_no_event():
    change = run(Success({"rows": 3}))
    assert change.state is JobState.SUCCEEDED
    assert change.result == {"rows": 3}
    assert change.event is None and change.error is None and change.run_after_s is None


def test_failure_with_attempts_left_is_requeued_after_backoff():
    change = run(Failure("ValueError", "bad", "Traceback ...\nValueError: bad"), attempt=2)
    assert change.state is JobState.QUEUED
    assert change.run_after_s == 4  # base * 2**2, rand=0.5 -> no jitter; after the DB clock
    assert change.error is not None
    assert change.error["attempt"] == 2 and change.error["type"] == "ValueError"
    assert change.error["at"] == NOW.isoformat()
    assert change.event is EventType.RETRY_SCHEDULED
    assert change.extra_attempts == 0


def test_failure_on_the_last_attempt_is_dead():
    change = run(Failure("ValueError", "bad"), attempt=3, max_attempts=3)
    assert change.state is JobState.DEAD
    assert change.event is EventType.DEAD
    assert change.event_data["reason"] == "attempts exhausted"
    assert change.error is not None and change.error["attempt"] == 3


def test_non_retryable_failure_is_dead_at_once():
    change = run(Failure("PermissionError", "no", retryable=False), attempt=1, max_attempts=5)
    assert change.state is JobState.DEAD
    assert change.event_data["reason"] == "not retryable"


def test_timeout_counts_as_a_failed_attempt():
    change = run(Timeout(30), attempt=1)
    assert change.state is JobState.QUEUED
    assert change.error is not None and change.error["type"] == "Timeout"
    assert "30s" in change.error["message"]
    assert run(Timeout(30), attempt=3).state is JobState.DEAD


def test_expired_lease_counts_as_an_attempt_and_says_so():
    expired = NOW - timedelta(seconds=5)
    change = run(LeaseExpired("w1", expired), attempt=1)
    assert change.state is JobState.QUEUED and change.event is EventType.LEASE_LOST
    assert change.error is not None and change.error["type"] == "LeaseExpired"
    assert "w1" in change.error["message"]
    poison = run(LeaseExpired("w1", expired), attempt=3, max_attempts=3)
    assert poison.state is JobState.DEAD and poison.event is EventType.DEAD


def test_snooze_requeues_without_using_up_an_attempt():
    change = run(Snoozed(after_s=90), attempt=3, max_attempts=3)
    assert change.state is JobState.QUEUED
    assert change.run_after_s == 90
    assert change.extra_attempts == 1 and change.error is None
    assert change.event is EventType.SNOOZED


def test_release_hands_the_job_back_now_without_using_an_attempt():
    change = run(Release(), attempt=2)
    assert change.state is JobState.QUEUED and change.run_after_s == 0
    assert change.extra_attempts == 1 and change.event is EventType.RELEASED


def test_cancel_outcome_is_cancelled_with_reason():
    change = run(Cancelled("user asked"))
    assert change.state is JobState.CANCELLED
    assert change.event is EventType.CANCELLED and change.event_data["reason"] == "user asked"


def test_traceback_keeps_its_tail():
    tb = "x" * 10_000 + "THE END"
    change = run(Failure("E", "m" * 5000, tb))
    assert change.error is not None
    assert change.error["traceback"].endswith("THE END")
    assert len(change.error["traceback"]) == TRACEBACK_TAIL_CHARS
    assert len(change.error["message"]) == 2000


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.99])
def test_retry_time_is_inside_the_jitter_band(rand):
    change = run(Failure("E", "m"), attempt=3, max_attempts=10, rand=rand)
    delay = change.run_after_s
    assert 8 * 0.8 <= delay <= 8 * 1.2


def test_every_outcome_type_is_handled():
    outcomes = [
        Success(),
        Snoozed(1),
        Cancelled(),
        Failure("E", "m"),
        Timeout(1),
        LeaseExpired("w", NOW),
        Release(),
    ]
    states = {type(o).__name__: run(o).state for o in outcomes}
    assert len(states) == 7
    assert all(isinstance(s, JobState) and s is not JobState.RUNNING for s in states.values())


@pytest.mark.parametrize("after_s", [float("inf"), float("nan"), 1e12])
def test_a_wait_no_clock_can_hold_is_refused_for_the_worker_to_turn_into_a_failure(after_s):
    with pytest.raises(ValueError, match="cannot run again"):
        run(Snoozed(after_s=after_s))
