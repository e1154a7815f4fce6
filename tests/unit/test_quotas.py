"""The quota decision alone: which submission it refuses, and what its message says."""

from __future__ import annotations

from api.quotas import Quota, over_cap, refusal
from jobs.model import NewJob

DEFAULT = Quota("*", -10, 10, None, 100, False)


def test_the_priority_range_is_inclusive_and_the_message_names_it():
    assert refusal(DEFAULT, NewJob(kind="k", priority=10)) is None
    assert refusal(DEFAULT, NewJob(kind="k", priority=-10)) is None
    problem = refusal(DEFAULT, NewJob(kind="k", priority=-11))
    assert problem is not None and problem.status == 422
    assert problem.message == "priority: users may submit priorities from -10 to 10, not -11"


def test_queues_are_any_unless_listed_and_an_owners_row_speaks_of_it():
    assert refusal(DEFAULT, NewJob(kind="k", queue="anything")) is None
    own = Quota("key:alice", 0, 0, ("default",), None, True)
    problem = refusal(own, NewJob(kind="k", queue="research"))
    assert problem is not None and problem.status == 403
    assert problem.message.startswith("queue 'research' is not open to key:alice")
    none = Quota("key:bob", 0, 0, (), None, True)
    assert "submit to one of none" in refusal(none, NewJob(kind="k")).message  # type: ignore[union-attr]


def test_demo_kinds_only_when_enabled():
    assert refusal(DEFAULT, NewJob(kind="demo.cpu")).code == "admin_only_kind"  # type: ignore[union-attr]
    assert refusal(Quota("*", -10, 10, None, None, True), NewJob(kind="demo.cpu")) is None
    assert refusal(DEFAULT, NewJob(kind="demonstrate")) is None  # the prefix is demo.


def test_the_cap_counts_what_is_added():
    assert over_cap(DEFAULT, 99, 1) is None
    assert over_cap(DEFAULT, 100, 1) is not None
    problem = over_cap(DEFAULT, 90, 20)
    assert problem is not None and "(this adds 20)" in problem.message
    assert over_cap(Quota("*", 0, 0, None, None, False), 10**9, 10**6) is None


def test_which_kinds_a_caller_may_submit_by_kind_alone():
    from api.quotas import kind_refusal

    assert kind_refusal(None, "demo.sleep") is None  # an admin
    assert kind_refusal(None, "leaderboard.refresh") is None
    assert kind_refusal(DEFAULT, "demo.sleep") == (
        "the demo kinds are for admins here (users may not submit demo.sleep)"
    )
    assert kind_refusal(DEFAULT, "strategy.optimize") is None  # `publish` is the payload's
    shared = kind_refusal(DEFAULT, "leaderboard.refresh")
    assert shared is not None and shared.startswith("only an admin may submit leaderboard.refresh")
    demo = Quota("key:alice", 0, 0, None, None, True)
    assert kind_refusal(demo, "demo.sleep") is None
    closed = Quota("key:bob", 0, 0, (), None, True)
    assert kind_refusal(closed, "demo.sleep") == "no queue is open to key:bob: ask an operator"
