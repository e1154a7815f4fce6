"""Pure pieces of the worker and the CLI, without a database."""

import pytest
import typer

from compute.specs import DemoSleep
from conveyor.cli import parse_duration
from jobs.transitions import Cancel, Failure, Snooze, Success
from worker.pool import _outcome
from worker.registry import Registry, default_registry


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("500ms", 0.5),
        ("2m", 120),
        ("1h", 3600),
        ("7d", 7 * 86400),
        ("45", 45),
        ("0.25", 0.25),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "-1s", "1w"])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(typer.BadParameter, match="duration"):
        parse_duration(text)


RESEARCH = [
    "leaderboard.refresh",
    "patterns.analyze",
    "prices.ingest",
    "strategy.discover",
    "strategy.optimize",
]


def test_default_registry_has_every_kind_and_knows_which_are_cpu_bound():
    registry = default_registry()
    names = [k.name for k in registry]
    assert names == ["demo.cpu", "demo.fail", "demo.noop", "demo.progress", "demo.sleep", *RESEARCH]
    assert [k.name for k in registry if k.cpu_bound] == ["demo.cpu", *RESEARCH]
    # the research kinds compute in the pool and store from the worker
    assert all(registry.get(n).save is not None for n in RESEARCH)  # type: ignore[union-attr]
    assert registry.get("prices.ingest").load is None  # type: ignore[union-attr]


def test_a_kind_cannot_be_registered_twice():
    registry = Registry()

    @registry.kind("x.y", DemoSleep, timeout_s=5)
    async def handler(ctx, payload):
        return None

    assert registry.get("x.y").timeout_s == 5
    with pytest.raises(ValueError, match="twice"):
        registry.register("x.y", handler, DemoSleep)


def test_pool_messages_map_to_outcomes():
    assert _outcome(("ok", {"a": 1})) == Success({"a": 1})
    assert _outcome(("retry", 3)) == Snooze(3.0)
    assert _outcome(("cancel", "why")) == Cancel("why")
    assert _outcome(("error", "ValueError", "m", "tb", False)) == Failure(
        "ValueError", "m", "tb", retryable=False
    )
    died = _outcome(("died",))
    assert isinstance(died, Failure) and died.type == "WorkerProcessDied"


def test_results_postgres_cannot_store_become_permanent_failures():
    from worker.runtime import _checked

    for bad in (float("nan"), {"when": object()}, {"text": "a\x00b"}):
        outcome = _checked(Success(bad))
        assert isinstance(outcome, Failure)
        assert outcome.type == "UnserializableResult" and not outcome.retryable
    assert _checked(Success({"ok": [1, 2.5, "x"]})) == Success({"ok": [1, 2.5, "x"]})
    assert _checked(Cancel("c")) == Cancel("c")


def test_the_api_and_the_worker_know_the_same_kinds():
    from compute.specs import SPECS

    registry = default_registry()
    assert sorted(SPECS) == [k.name for k in registry]
    assert all(registry.get(name).payload is model for name, model in SPECS.items())
