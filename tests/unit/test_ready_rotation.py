"""When the claim table's halves rotate, and how far back the reaper looks (pure)."""

import pytest

from jobs.ready import ROW_BYTES, Rotation, rotation
from worker.reaper import reap_window_s

ROWS = 100  # rotate after about this many jobs


def rows(n: int) -> int:
    """The bytes `n` ready rows take."""
    return n * ROW_BYTES


def decide(
    current: int, other: int, left: int | None, move_rows: int = 10, held_s: float = 60.0
) -> Rotation:
    return rotation(
        rows(current),
        rows(other),
        left,
        held_s=held_s,
        rotate_rows=ROWS,
        move_rows=move_rows,
        held_after_s=2.0,
    )


def test_nothing_rotates_while_no_snapshot_holds_the_vacuum_horizon_back():
    assert decide(100 * ROWS, 100 * ROWS, None, held_s=1.9) is Rotation.WAIT
    assert decide(100 * ROWS, 100 * ROWS, 0, held_s=0.0) is Rotation.WAIT
    assert decide(100 * ROWS, 0, None, held_s=2.0) is Rotation.COUNT


def test_small_halves_are_left_alone_without_counting():
    assert decide(ROWS - 1, ROWS - 1, None) is Rotation.WAIT
    assert decide(0, 0, None) is Rotation.WAIT


def test_a_full_current_half_asks_for_the_other_halfs_rows_first():
    assert decide(ROWS, 0, None) is Rotation.COUNT
    assert decide(0, ROWS, None) is Rotation.COUNT


def test_an_empty_other_half_is_truncated_and_made_current_once_the_current_is_full():
    assert decide(ROWS, 0, 0) is Rotation.ROTATE
    assert decide(ROWS, 5 * ROWS, 0) is Rotation.ROTATE
    # The current half is not full yet: only empty the other one (it holds dead rows).
    assert decide(10, 5 * ROWS, 0) is Rotation.EMPTY


def test_a_few_rows_left_are_moved_and_a_backlog_only_once_half_of_it_was_claimed():
    assert decide(ROWS, 5 * ROWS, 10) is Rotation.MOVE  # at most move_rows
    assert decide(ROWS, 5 * ROWS, 11) is Rotation.MOVE  # 489 claimed out of it, 11 left
    assert decide(ROWS, 1000, 600, move_rows=10) is Rotation.WAIT  # 400 claimed, 600 left
    assert decide(ROWS, 1000, 500, move_rows=10) is Rotation.MOVE  # 500 claimed, 500 left
    assert decide(ROWS, 1000, 600, move_rows=600) is Rotation.MOVE


@pytest.mark.parametrize(
    ("since_last", "reaped", "since_full", "window"),
    [
        (None, 0, 0.0, None),  # the first pass looks all the way back
        (5.0, 0, 30.0, 15.0),  # then back to the previous pass, plus the margin
        (5.0, 3, 30.0, None),  # the last pass found some: there may be more behind it
        (5.0, 0, 600.0, None),  # every ten minutes, all the way back
    ],
)
def test_the_reaper_looks_back_to_its_previous_pass(since_last, reaped, since_full, window):
    assert reap_window_s(since_last, reaped, since_full) == window
