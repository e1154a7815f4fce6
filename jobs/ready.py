"""When to rotate `job_ready`'s two halves (pure; `Store.rotate_ready` does what it says).

Claims delete the ready rows they take. A deleted row stays in its half's index until vacuum
removes it, and while a long transaction holds back the vacuum horizon nothing removes it,
so every claim walks past all of them. TRUNCATE removes them whatever any snapshot holds:
once the half that only drains (`other`) has no rows left, it is truncated and becomes the
current half, where new rows go. The dead rows a claim can meet are then what the two halves
took in since the last rotation (`rotate_rows` or so each).

All of this only while a snapshot holds the vacuum horizon back (see `rotation`).

Rows that stay in the other half (a backlog, jobs due later) would stop the rotation for
good, so they are moved into the current half when that is cheap: at most `move_rows` of
them, or when at least as many rows have been claimed out of that half as are left in it
(each move is then paid for by a claim already made, and no row is moved over and over).
"""

from __future__ import annotations

from enum import Enum

ROW_BYTES = 92
"""About what one ready row takes on disk with short queue and owner names (up to 13
characters of owner): 88 bytes of aligned tuple (header and eight columns) and a 4-byte line
pointer, so 89 to a page. Sizes are read from disk, which needs no scan and no snapshot.
Rows larger than this make the claimed rows look more than they are; it takes rows twice as
large (owner names of 100 characters and more) for a move to be decided on rows that were
never claimed, so that the same rows could be moved over and over."""


class Rotation(Enum):
    WAIT = "wait"
    """Nothing worth doing: the halves are small, or the other half's rows cannot be moved
    cheaply yet."""
    EMPTY = "empty"
    """Truncate the other half (its rows are all claimed); the current one stays current."""
    ROTATE = "rotate"
    """Truncate the other half and make it current."""
    MOVE = "move"
    """Move the other half's rows into the current one first, then decide again."""
    COUNT = "count"
    """Count the other half's rows, then decide again."""


def rotation(
    current_bytes: int,
    other_bytes: int,
    other_rows: int | None,
    *,
    held_s: float,
    rotate_rows: int,
    move_rows: int,
    held_after_s: float,
) -> Rotation:
    """What to do next. `other_rows`: the rows left in the other half (None: not counted
    yet, which is asked for only when the sizes say there may be something to do).

    Only while the vacuum horizon has been held back for `held_after_s` (`held_s`, the age
    of the oldest snapshot): otherwise the first claim to pass a deleted row's index entry
    marks it, later ones skip it cheaply, and vacuum removes it, so rotating and moving rows
    would only cost the claims time (measured: a 20,000-job drain at 0.4 of its speed)."""
    if held_s < held_after_s:
        return Rotation.WAIT
    threshold = rotate_rows * ROW_BYTES
    current_full = current_bytes >= threshold
    if not current_full and other_bytes < threshold:
        return Rotation.WAIT
    if other_rows is None:
        return Rotation.COUNT
    if other_rows == 0:
        if current_full:
            return Rotation.ROTATE
        return Rotation.EMPTY if other_bytes > 0 else Rotation.WAIT
    claimed_out = max(0, other_bytes // ROW_BYTES - other_rows)
    if other_rows <= move_rows or claimed_out >= other_rows:
        return Rotation.MOVE
    return Rotation.WAIT
