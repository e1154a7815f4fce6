"""What a handler's return or raise means for its job: the one place that maps them.

The executor (on the loop or in a thread) and the pool's children (in another process) all
call `raised`, so a handler's `Snooze`, `Cancel` or `Permanent` means the same wherever it
ran; returning is `Success(result)`, and `checked` makes sure the job's final result can be
stored. `decide` then turns the outcome into a state change.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from jobs.handler import Cancel, Permanent, Snooze
from jobs.transitions import Cancelled, Failure, Outcome, Snoozed, Success


def checked(outcome: Outcome) -> Outcome:
    """A job's final outcome, fit to store. A result PostgreSQL's jsonb cannot hold (NaN, a
    NUL character, a datetime) would make the whole batch's write fail: it becomes a
    permanent failure of this job instead. (A kind with a `save` checks what `save`
    returned, not its handler's output, which only `save` sees.)"""
    if not isinstance(outcome, Success) or outcome.result is None:
        return outcome
    try:
        # As the store will send it: UTF-8 text (a lone surrogate cannot be encoded).
        text = json.dumps(outcome.result, allow_nan=False, ensure_ascii=False)
        text.encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        return Failure(
            "UnserializableResult", f"the handler's result is not JSON: {exc}", retryable=False
        )
    if "\\u0000" in text:
        return Failure(
            "UnserializableResult",
            "the handler's result contains a NUL character, which PostgreSQL's jsonb cannot store",
            retryable=False,
        )
    return outcome


def raised(exc: BaseException) -> Outcome:
    """The handler (or a kind's load or save) raised `exc`; call it in the `except` block,
    where the traceback is still at hand."""
    if isinstance(exc, Snooze):
        return Snoozed(exc.after_s)
    if isinstance(exc, Cancel):
        return Cancelled(exc.reason)
    if isinstance(exc, Permanent):  # deliberate: its message says it all
        return Failure(type(exc).__name__, str(exc), None, retryable=False)
    return Failure(type(exc).__name__, str(exc), traceback_of(exc))


def traceback_of(exc: BaseException) -> str:
    """The traceback with each file named as its module's path (`kinds/research.py`), not
    where this machine keeps it: a job's errors are shown to its users."""
    tb = traceback.TracebackException.from_exception(exc)
    for frame in _frames(tb):
        frame.filename = _short(frame.filename)
    return "".join(tb.format())


def _frames(tb: traceback.TracebackException) -> list[traceback.FrameSummary]:
    frames = list(tb.stack)
    for linked in (tb.__cause__, tb.__context__):
        if linked is not None:
            frames += _frames(linked)
    return frames


def _short(path: str) -> str:
    roots = sorted((p for p in sys.path if p and path.startswith(p + os.sep)), key=len)
    return os.path.relpath(path, roots[-1]) if roots else os.path.basename(path)


def unknown_kind(kind: str, known: list[str]) -> Outcome:
    return Failure(
        "UnknownKind",
        f"no handler is registered for kind {kind!r} (known: {', '.join(known)})",
        retryable=False,
    )


def invalid_payload(message: str) -> Outcome:
    return Failure("InvalidPayload", message, retryable=False)


CHILD_DIED: Outcome = Failure("WorkerProcessDied", "the pool child running this job exited")
