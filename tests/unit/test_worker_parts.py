"""Pure pieces of the worker and the CLI, without a database."""

import pytest
import typer

from compute.specs import DemoSleep
from conveyor.cli import parse_duration
from jobs.transitions import Cancelled, Failure, Snoozed, Success
from worker import outcomes
from worker.fetcher import claim_ahead
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


def test_what_a_handler_raises_maps_to_one_outcome():
    from jobs.handler import Cancel, Permanent, Retry, Snooze

    def outcome_of(exc: Exception):
        try:
            raise exc
        except Exception as caught:
            return outcomes.raised(caught)

    assert outcome_of(Snooze(3)) == Snoozed(3.0)
    with pytest.warns(DeprecationWarning, match="Retry is now Snooze"):
        old = Retry(3)
    assert outcome_of(old) == Snoozed(3.0)  # the old name still snoozes
    assert outcome_of(Cancel("why")) == Cancelled("why")
    failed = outcome_of(ValueError("m"))
    assert isinstance(failed, Failure) and (failed.type, failed.message) == ("ValueError", "m")
    assert failed.retryable and "ValueError: m" in (failed.traceback or "")
    permanent = outcome_of(Permanent("no"))
    assert isinstance(permanent, Failure) and not permanent.retryable
    assert permanent.traceback is None  # deliberate: the message is the whole story


def test_a_traceback_names_files_by_module_path_not_where_this_machine_keeps_them():
    import os

    import compute.research

    def deep() -> None:
        compute.research.split_at(10, float("nan"))  # raises inside compute/research.py

    try:
        deep()
    except Exception as caught:
        failed = outcomes.raised(caught)
    assert isinstance(failed, Failure) and failed.traceback
    assert 'File "compute/research.py"' in failed.traceback
    assert 'File "tests/unit/test_worker_parts.py"' in failed.traceback
    root = os.path.dirname(os.path.dirname(compute.research.__file__))
    assert root not in failed.traceback and os.sep + "site-packages" not in failed.traceback


def test_results_postgres_cannot_store_become_permanent_failures():
    for bad in (float("nan"), {"when": object()}, {"text": "a\x00b"}, {"text": "\ud800"}):
        outcome = outcomes.checked(Success(bad))
        assert isinstance(outcome, Failure)
        assert outcome.type == "UnserializableResult" and not outcome.retryable
    assert outcomes.checked(Success({"ok": [1, 2.5, "x"]})) == Success({"ok": [1, 2.5, "x"]})
    assert outcomes.checked(Cancelled("c")) == Cancelled("c")


@pytest.mark.parametrize(
    ("job_s", "claim_s", "ahead"),
    [
        (None, 0.001, 0),  # nothing finished yet: only the free slots
        (0.0, 0.001, 16),  # instant jobs: the whole prefetch
        (0.00001, 0.001, 16),  # 10 µs jobs, 1 ms claims: 1,600 would go, capped at 16
        (0.001, 0.001, 16),  # as long as a claim: each slot one more
        (0.004, 0.001, 4),  # a quarter of the slots free up during a claim
        (2.0, 0.001, 0),  # long jobs: nothing held back behind them
    ],
)
def test_claim_ahead_is_what_the_slots_use_up_in_one_round_trip(job_s, claim_s, ahead):
    assert claim_ahead(16, 16, job_s, claim_s) == ahead


def test_claim_ahead_never_exceeds_prefetch_and_zero_turns_it_off():
    assert claim_ahead(5, 100, 0.00001, 0.01) == 5
    assert claim_ahead(0, 100, 0.00001, 0.01) == 0


def test_kinds_are_imported_when_first_used():
    import subprocess
    import sys

    code = (
        "import sys; from worker.registry import default_registry; r = default_registry(); "
        "assert 'pandas' not in sys.modules and 'kinds.research' not in sys.modules, 'eager'; "
        "r.get('strategy.optimize').handler; assert 'kinds.research' in sys.modules; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_bad_reference_says_what_is_expected():
    registry = Registry()
    kind = registry.register("x.y", "no_colon_here", DemoSleep)
    with pytest.raises(ValueError, match="module:function"):
        _ = kind.handler


def test_the_api_and_the_worker_know_the_same_kinds():
    from compute.specs import SPECS

    registry = default_registry()
    assert sorted(SPECS) == [k.name for k in registry]
    assert all(registry.get(name).payload is model for name, model in SPECS.items())


def test_an_outcome_that_cannot_be_applied_kills_the_job_instead_of_wedging_it():
    from datetime import UTC, datetime

    from jobs.backoff import Backoff
    from jobs.model import Claimed, JobState
    from jobs.transitions import Snoozed
    from worker.executor import decided

    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = Claimed(1, "q", "k", {}, 0, 1, 5, None, "o", "w", now, now, now, now)
    change = decided(job, Snoozed(float("inf")), now, Backoff())
    assert change.state is JobState.DEAD
    assert change.error is not None and change.error["type"] == "UndecidableOutcome"
    assert decided(job, Snoozed(5), now, Backoff()).state is JobState.QUEUED


def test_a_notify_heard_while_no_claim_was_wanted_is_acted_on_when_room_frees():
    import asyncio

    from worker.fetcher import Fetcher
    from worker.held import Held
    from worker.settings import WorkerSettings

    fetcher = Fetcher(None, "w", WorkerSettings(), Held(), lambda: None, asyncio.Event())  # type: ignore[arg-type]
    fetcher._more = False  # the last claim came back short: the queue looked empty
    fetcher.room()
    assert not fetcher._changed.is_set()  # a freed slot alone is not worth a claim
    fetcher.notified()  # a NOTIFY while every slot was busy (nothing claimed for it)
    fetcher._changed.clear()  # the fetcher looked, wanted nothing, and went back to waiting
    fetcher.room()
    assert fetcher._changed.is_set()  # the freed slot now claims the announced job


def test_a_worker_says_which_kinds_are_cpu_bound_without_importing_them():
    import subprocess
    import sys

    code = (
        "import sys; from worker.registry import default_registry; r = default_registry(); "
        "p = r.published(); "
        "assert 'pandas' not in sys.modules and 'kinds.research' not in sys.modules, 'eager'; "
        "assert [k['cpu_bound'] for k in p] == [k.cpu_bound for k in r], 'wrong'; "
        "assert [k['kind'] for k in p] == [k.name for k in r]; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_kind_the_source_cannot_settle_is_asked_of_its_handler(tmp_path, monkeypatch):
    import sys

    (tmp_path / "odd_kinds.py").write_text(
        "import functools\n"
        "async def plain_async(ctx, payload): ...\n"
        "def plain(ctx, payload): ...\n"
        "@functools.wraps(plain)\n"
        "def wrapped(ctx, payload): ...\n"
        "async def rebound(ctx, payload): ...\n"
        "rebound = plain\n"
        "if True:\n"
        "    async def conditional(ctx, payload): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    for name in ("plain_async", "plain", "wrapped", "rebound", "conditional"):
        registry.register(name, f"odd_kinds:{name}", DemoSleep, timeout_s=2.5)
    published = {k["kind"]: k for k in registry.published()}
    assert published["plain_async"] == {"kind": "plain_async", "timeout_s": 2.5, "cpu_bound": False}
    assert published["plain"]["cpu_bound"] is True
    assert published["rebound"]["cpu_bound"] is True  # `rebound = plain` wins
    assert published["conditional"]["cpu_bound"] is False
    assert "odd_kinds" in sys.modules  # the decorated and rebound ones needed an import
    assert published["wrapped"]["cpu_bound"] is True
    sys.modules.pop("odd_kinds")


def test_the_source_of_a_module_is_parsed_once_for_all_its_kinds(tmp_path, monkeypatch):
    import ast
    import sys

    (tmp_path / "many_kinds.py").write_text(
        "".join(f"async def k{i}(ctx, payload): ...\n" for i in range(5)) + "def cpu(c, p): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    parsed: list[str] = []
    parse = ast.parse

    def counted(source, *args, **kwargs):
        parsed.append(source)
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counted)
    registry = Registry()
    for name in ("k0", "k1", "k2", "k3", "k4", "cpu"):
        registry.register(name, f"many_kinds:{name}", DemoSleep)
    published = {k["kind"]: k["cpu_bound"] for k in registry.published()}
    assert published == {**{f"k{i}": False for i in range(5)}, "cpu": True}
    assert len(parsed) == 1
    assert "many_kinds" not in sys.modules


def test_jobs_done_are_taken_once_and_put_back_when_unwritten():
    from worker.completer import JobsDone

    done = JobsDone()
    done.count += 3
    assert done.take() == 3 and done.take() == 0
    done.put_back(3)
    done.count += 1
    assert done.take() == 4


@pytest.mark.parametrize(
    ("lease_s", "silent_s"),
    [(2.0, 60.0), (30.0, 90.0), (20.0, 60.0)],  # max(3 × lease, 60 s)
)
def test_workers_are_pruned_after_three_leases_or_a_minute_by_default(lease_s, silent_s):
    from worker.settings import WorkerSettings

    assert WorkerSettings(lease_s=lease_s).worker_silent_s == silent_s


def test_the_prune_age_comes_from_the_environment(monkeypatch):
    from worker.settings import WorkerSettings

    monkeypatch.setenv("CONVEYOR_WORKER_PRUNE_AFTER_S", "4.5")
    assert WorkerSettings(lease_s=2.0).worker_silent_s == 4.5


@pytest.mark.parametrize(
    ("prune_after_s", "says"),
    [
        (0, "greater than 0"),
        (-1, "greater than 0"),
        (2.0, "must be longer than the lease"),
        (1.5, "must be longer than the lease"),
    ],
)
def test_a_prune_age_within_the_lease_is_refused(prune_after_s, says):
    from pydantic import ValidationError

    from worker.settings import WorkerSettings

    with pytest.raises(ValidationError, match=says):
        WorkerSettings(lease_s=2.0, prune_after_s=prune_after_s)
