"""Parameter grids evaluated as matrices: one row per parameter set, no Python loop per
backtest. The same definitions as `compute.backtest`, which stays the reference: a test checks
every metric of every row against it to 1e-9.

Why it is fast (7,830 MA backtests of 2,500 bars in under a fifth of a second, one core):
- each indicator is computed once per distinct window, into a table in window order; a chunk
  of a grid reads a slice of it, and its signals are one comparison;
- a long/flat position is a sequence of runs, and everything but the time below the peak is
  a function of the runs alone: while flat, equity is constant; while long it moves with the
  series itself. A run's sums (mean, volatility, downside) come from prefix sums of the
  returns, its highest and lowest equity and its worst fall from sparse tables of the
  series' growth, built once per segment; the few bars that pay a cost are corrected one by
  one;
- only the time below the peak needs a pass over each bar, a comparison against the run's
  threshold and against the last higher bar before it (a table of the series);
- the metrics run no running maximum or cumulative product over (rows × bars): those are
  sequential, and cost ten times an element-wise pass (the stateful families' signals still
  take one, a forward fill of their last entry or exit);
- rows are evaluated a chunk at a time, so memory stays flat however large the grid. Each
  row's figures do not depend on the chunk it was in, so any split (Spark's) gives the same
  bits.

Long/flat positions only (a grid of long/short variants is the engine's, one at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compute.backtest import (
    DRAWDOWN_EPSILON,
    PERIODS_PER_YEAR,
    SIGNAL_EPSILON,
    VOLATILITY_FLOOR,
    WIN_EPSILON,
    moving_average,
    rsi,
    simple_returns,
)
from compute.specs import FAMILY_PARAMETERS, METRIC_NAMES, WHOLE_PARAMETERS, parameter_sets

Array = NDArray[np.float64]
Segment = tuple[int, int]
"""[first, last) of the returns (return t is from close t to close t+1)."""

PARAMETERS = FAMILY_PARAMETERS
"""Each family's parameters, in the order of a grid's columns."""


@dataclass(frozen=True)
class GridResult:
    family: str
    params: Array
    """(rows, parameters), columns in PARAMETERS[family] order."""
    segments: list[Segment]
    metrics: list[dict[str, Array]]
    """Per segment, each metric as one value per row."""

    def param_dicts(self) -> list[dict[str, Any]]:
        names = PARAMETERS[self.family]
        return [
            {
                n: int(v) if n in WHOLE_PARAMETERS else float(v)
                for n, v in zip(names, row, strict=True)
            }
            for row in self.params
        ]


def ma_pairs(fast: Sequence[int], slow: Sequence[int]) -> Array:
    """Every (fast, slow) with fast < slow."""
    pairs = [(f, s) for f in fast for s in slow if f < s]
    return np.array(pairs, dtype=np.float64).reshape(-1, 2)


def product(family: str, values: Mapping[str, Sequence[float]]) -> Array:
    """The grid of every usable combination of `values`, one row per parameter set."""
    sets = parameter_sets(family, values)
    return np.array(sets, dtype=np.float64).reshape(len(sets), len(PARAMETERS[family]))


# -- signals, a chunk of rows at a time ------------------------------------------------------


def _hold(enter: NDArray[np.bool_], leave: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Long from a bar where `enter` holds until one where `leave` holds (enter wins ties),
    flat before the first entry: the engine's stateful loop as a forward fill."""
    n = enter.shape[1]
    marked = enter | leave
    last = np.where(marked, np.arange(n, dtype=np.int32), np.int32(-1))
    np.maximum.accumulate(last, axis=1, out=last)
    held = np.take_along_axis(enter, np.maximum(last, 0), axis=1)
    held &= last >= 0
    return held


INDICATORS: dict[str, dict[str, tuple[int, ...]]] = {
    "ma_crossover": {"ma": (0, 1)},
    "rsi_reversion": {"rsi": (0,)},
    "donchian_breakout": {"max": (0,), "min": (0,)},
    "bollinger_reversion": {"mean": (0,), "std": (0,)},
}
"""Each family's indicators, and the grid columns holding their windows (or periods)."""


class _Signals:
    """Builds the signal matrix of any rows of one family's grid for one price series.

    Each indicator is computed once per distinct window in the grid, into one table in window
    order. A grid lists its sets in order, so the rows a chunk needs are mostly one row of the
    table, broadcast, or a slice of it, and cost no copy."""

    def __init__(self, family: str, close: Array, params: Array) -> None:
        self.family = family
        self.close = close
        self._tables: dict[str, tuple[Array, NDArray[np.intp]]] = {}
        for name, columns in INDICATORS[family].items():
            windows = np.unique(params[:, columns].astype(np.intp))
            row_of = np.zeros(int(windows.max(initial=0)) + 1, dtype=np.intp)
            row_of[windows] = np.arange(len(windows))
            table = self._compute_table(name, windows)
            self._tables[name] = (table, row_of)

    def _table(self, name: str, windows: Array) -> Array:
        """The indicator's rows for these windows: (1 or len(windows), bars)."""
        table, row_of = self._tables[name]
        rows = row_of[windows.astype(np.intp)]
        if (rows == rows[0]).all():
            return table[rows[0] : rows[0] + 1]
        if (np.diff(rows) == 1).all():
            return table[rows[0] : rows[-1] + 1]
        return table[rows]

    def _compute_table(self, name: str, windows: NDArray[np.intp]) -> Array:
        """One row per window, ascending."""
        if name in ("max", "min"):  # of the previous `window` closes, excluding this one
            return _past_extremes(self.close, windows, np.maximum if name == "max" else np.minimum)
        rows = [self._compute(name, int(w)) for w in windows]
        return np.stack(rows) if rows else np.empty((0, len(self.close)))

    def _compute(self, name: str, window: int) -> Array:
        close = self.close
        match name:
            case "ma":
                a = moving_average(close, window)
                # +inf where not ready: "fast > slow" is then false, as in the engine
                return np.where(np.isnan(a), np.inf, a)
            case "rsi":
                return rsi(close, window)
            case "mean":
                return moving_average(close, window)
            case "std":  # as compute.backtest.bollinger_reversion has it: identical bands
                mean = moving_average(close, window)
                sq = moving_average(close**2, window)
                return np.sqrt(np.maximum(sq - mean**2, 0.0) * window / max(window - 1, 1))
        raise ValueError(f"unknown indicator {name!r}")

    def build(self, params: Array) -> NDArray[np.bool_]:
        """Signals of these rows of the grid: (rows, bars)."""
        signal = self._signal(params)
        return np.broadcast_to(signal, (len(params), len(self.close)))

    def _signal(self, params: Array) -> NDArray[np.bool_]:
        close = self.close
        with np.errstate(invalid="ignore"):
            match self.family:
                case "ma_crossover":
                    fast, slow = self._table("ma", params[:, 0]), self._table("ma", params[:, 1])
                    signal: NDArray[np.bool_] = fast > slow + SIGNAL_EPSILON * np.abs(slow)
                    return signal
                case "rsi_reversion":
                    value = self._table("rsi", params[:, 0])
                    enter = value < params[:, 1:2]
                    return _hold(enter, ~enter & (value > params[:, 2:3]))
                case "donchian_breakout":
                    enter = close > self._table("max", params[:, 0])
                    return _hold(enter, ~enter & (close < self._table("min", params[:, 0])))
                case "bollinger_reversion":
                    mean = self._table("mean", params[:, 0])
                    margin = SIGNAL_EPSILON * np.abs(close)
                    band = mean - params[:, 1:2] * self._table("std", params[:, 0])
                    enter = close < band - margin
                    return _hold(enter, ~enter & (close >= mean - margin))
        raise ValueError(f"unknown strategy family {self.family!r}")


def _past_extremes(close: Array, windows: NDArray[np.intp], extreme: np.ufunc) -> Array:
    """For each window w (ascending), the max (or min) of the w closes before each bar, NaN
    for the first w bars. The extreme over w closes is the one over w − 1 and one more close,
    so the whole table costs one element-wise pass per window up to the largest."""
    n = len(close)
    table = np.full((len(windows), n), np.nan)
    run = close.copy()  # run[t]: the extreme of the `width` closes ending at t, for t ≥ width − 1
    width = 1
    for i, w in enumerate(windows):
        while width < min(w, n):
            width += 1
            extreme(run[width - 1 :], close[: n - width + 1], out=run[width - 1 :])
        table[i, w:] = run[w - 1 : n - 1]
    return table


# -- metrics of a chunk of long/flat positions over one segment -----------------------------


class Path:
    """One segment of returns, as tables that every row's metrics are read from.

    A long/flat row is a sequence of runs: while flat its equity is constant, and while long it
    moves with the growth of the series itself, so a run's sums, its highest and lowest
    equity and its worst fall all come from prefix sums and sparse tables of the series,
    built once: a row costs a pass over its bars only to find its runs and its time below
    the peak."""

    def __init__(self, r: Array, risk_free: float) -> None:
        n = len(r)
        self.n = n
        self.r = r
        self.rf = risk_free / PERIODS_PER_YEAR
        held_down = np.minimum(r - self.rf, 0.0) ** 2
        self.flat_down = min(-self.rf, 0.0) ** 2
        self.prefix = np.zeros((3, n + 1))
        np.cumsum(np.stack([r, r * r, held_down]), axis=1, out=self.prefix[:, 1:])
        growth: Array = np.cumprod(
            1.0 + r, dtype=np.float64
        )  # equity after each return, from 1 before the first
        self.growth = growth
        levels = n.bit_length()
        self.log2 = np.frexp(np.arange(n + 1))[1].astype(np.intp) - 1  # floor(log2 L), L ≥ 1
        self.pow2 = 1 << np.arange(levels)
        # hi/lo[j, i]: max/min of growth[i : i + 2^j]; fall[j, i]: the least later/earlier
        # ratio within it (1 + its max drawdown, which is ≤ 0)
        self.hi = np.empty((levels, n))
        self.lo = np.empty((levels, n))
        self.fall = np.ones((levels, n))
        self.hi[0], self.lo[0] = growth, growth
        for j in range(1, levels):
            h, m = 1 << (j - 1), n - (1 << j) + 1
            np.maximum(self.hi[j - 1, :m], self.hi[j - 1, h : h + m], out=self.hi[j, :m])
            np.minimum(self.lo[j - 1, :m], self.lo[j - 1, h : h + m], out=self.lo[j, :m])
            across = self.lo[j - 1, h : h + m] / self.hi[j - 1, :m]
            np.minimum(self.fall[j - 1, :m], self.fall[j - 1, h : h + m], out=self.fall[j, :m])
            np.minimum(self.fall[j, :m], across, out=self.fall[j, :m])
        # above[t]: the last bar before t that bar t is below by more than DRAWDOWN_EPSILON
        self.above = self._last_above(growth / (1.0 - DRAWDOWN_EPSILON))

    def _last_above(self, level: Array) -> NDArray[np.intp]:
        """For each t, the last v < t whose growth is above level[t] (−1 if none)."""
        end = np.arange(self.n)
        for j in range(len(self.pow2) - 1, -1, -1):
            start = end - self.pow2[j]
            ok = start >= 0
            skip = ok & (self.hi[j, np.where(ok, start, 0)] <= level)
            end = np.where(skip, start, end)
        return end - 1

    def highest(self, s: NDArray[np.intp], x: NDArray[np.intp]) -> Array:
        """max(growth[s:x]) for each non-empty [s, x)."""
        j = self.log2[x - s]
        high: Array = np.maximum(self.hi[j, s], self.hi[j, x - self.pow2[j]])
        return high

    def lowest(self, s: NDArray[np.intp], x: NDArray[np.intp]) -> Array:
        """min(growth[s:x]) for each non-empty [s, x)."""
        j = self.log2[x - s]
        low: Array = np.minimum(self.lo[j, s], self.lo[j, x - self.pow2[j]])
        return low

    def least_ratio(self, s: NDArray[np.intp], x: NDArray[np.intp]) -> Array:
        """min over s ≤ u ≤ t < x of growth[t] / growth[u]: 1 − the worst fall within [s, x).
        Two overlapping power-of-two blocks cover every pair inside either; the pairs from
        before the right block into it are the right block's low over the high before it."""
        j = self.log2[x - s]
        m = x - self.pow2[j]
        within = np.minimum(self.fall[j, s], self.fall[j, m])
        before = m > s
        high = self.highest(s, np.where(before, m, s + 1))
        least: Array = np.minimum(within, np.where(before, self.lo[j, m] / high, 1.0))
        return least

    def sums(self, s: NDArray[np.intp], x: NDArray[np.intp]) -> Array:
        """(3, runs): sums of r, r² and the downside term over each [s, x)."""
        sums: Array = self.prefix[:, x] - self.prefix[:, s]
        return sums


def _by_row(values: Array, rows: int, row: NDArray[np.intp], rank: NDArray[np.intp]) -> Array:
    """Runs' values laid out (rows, most runs), each row's runs in order from column 0."""
    table = np.full((rows, int(rank.max()) + 1 if len(rank) else 1), np.nan)
    table[row, rank] = values
    return table


def _longest_true_run(flags: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per row, the most consecutive True values."""
    rows, n = flags.shape
    starts = flags.copy()
    starts[:, 1:] &= ~flags[:, :-1]
    ends = flags.copy()
    ends[:, :-1] &= ~flags[:, 1:]
    first, last = np.flatnonzero(starts), np.flatnonzero(ends)
    longest = np.zeros(rows, dtype=np.int64)
    np.maximum.at(longest, first // n, last - first + 1)
    return longest


def segment_metrics(
    position: NDArray[np.bool_], paid_first: NDArray[np.bool_], path: Path, cost: float
) -> dict[str, Array]:
    """The engine's metrics of each row, for positions (rows, bars) held over `path`.

    `paid_first` marks the rows whose position at the segment's first bar is a change from
    the bar before it (which may lie before the segment), so that bar pays `cost`."""
    rows, n = position.shape
    r, rf = path.r, path.rf

    # the runs: every row starts one at bar 0 and another at each change of position
    start = np.empty((rows, n), dtype=np.bool_)
    start[:, 0] = True
    np.not_equal(position[:, 1:], position[:, :-1], out=start[:, 1:])
    flat_index = np.flatnonzero(start)
    row, s = np.divmod(flat_index, n)
    x = np.minimum(np.append(flat_index[1:], rows * n) - row * n, n)
    held = position[row, s]
    paid = (s > 0) | paid_first[row]
    c = np.where(paid, cost, 0.0)
    first_run = np.flatnonzero(s == 0)
    rank = np.arange(len(s)) - first_run[row]

    # sums behind mean, volatility and downside, run by run: a run's first bar on its own (it
    # may pay the cost), the rest of a long run from prefix sums, the rest of a flat run is
    # zero returns
    first = np.where(held, r[s], 0.0) - c  # the strategy's return on the run's first bar
    rest = path.sums(s + 1, x) * held
    run_down = np.minimum(first - rf, 0.0) ** 2 + rest[2]
    run_down += np.where(held, 0.0, (x - s - 1) * path.flat_down)
    total_sr = np.bincount(row, first + rest[0], minlength=rows)
    total_sq = np.bincount(row, first * first + rest[1], minlength=rows)
    down = np.bincount(row, run_down, minlength=rows)
    count = np.bincount(row, np.where(held, x - s, 0), minlength=rows).astype(np.float64)
    mean = total_sr / n
    excess_mean = mean - rf
    # squared deviations from the mean, the first bars' taken one by one: a row whose returns
    # are mostly costs would lose its variance in Σr² − n·mean²
    m = mean[row]
    deviation = (first - m) ** 2 + (x - s - 1) * m * m + (rest[1] - 2.0 * m * rest[0])
    var = np.bincount(row, deviation, minlength=rows) / (n - 1) if n > 1 else np.full(rows, np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    std[std <= VOLATILITY_FLOOR * np.sqrt(total_sq / n)] = 0.0  # constant returns
    downside = np.sqrt(down / n)

    # equity: a long run [s, x) grows by f · g[x−1] / g[s], where f = 1 + r_s − c is its first
    # bar net of the cost it paid (if it paid), and a flat run by 1 − c. Ratios of g are taken
    # first, so a run whose price never falls never shows a fall: g[t] / g[s] ≥ 1 exactly.
    # `before` is each run's equity before its first bar.
    g = path.growth
    f = 1.0 + r[s] - c
    grows = np.where(held, f * (g[x - 1] / g[s]), 1.0 - c)
    compounded = np.multiply.accumulate(
        np.nan_to_num(_by_row(grows, rows, row, rank), nan=1.0), axis=1
    )
    before = np.ones(len(s))
    later = rank > 0
    before[later] = compounded[row[later], rank[later] - 1]
    # each run's highest and lowest equity
    level = np.where(held, before * (f * (path.highest(s, x) / g[s])), before * grows)
    low = before * (f * (path.lowest(s, x) / g[s]))
    peaks = np.fmax.accumulate(_by_row(level, rows, row, rank), axis=1)
    peak_before = np.ones(len(s))
    peak_before[later] = np.maximum(peaks[row[later], rank[later] - 1], 1.0)
    least = np.where(
        held,
        np.minimum(low / peak_before, path.least_ratio(s, x)),
        level / peak_before,
    )
    max_dd = np.minimum(np.minimum.reduceat(least, first_run), 1.0) - 1.0

    # time below the peak: a flat run is below it throughout or never; a long bar is below
    # it when under the peak before the run, or under the run's own high so far
    floor = (1.0 - DRAWDOWN_EPSILON) * peak_before
    with np.errstate(divide="ignore"):  # equity = before · f / g[s] · g[t] on a long run
        threshold = np.where(
            held, floor / (before * (f / g[s])), np.where(level < floor, np.inf, -np.inf)
        )
    since = np.where(held, s, n)
    lengths = x - s
    below = g < np.repeat(threshold, lengths).reshape(rows, n)
    below |= path.above >= np.repeat(since, lengths).reshape(rows, n)
    duration = _longest_true_run(below)

    # trades: the long runs that end before the segment does; each returns grows − 1
    closed = held & (x < n)
    trades = np.bincount(row[closed], minlength=rows)
    won = (grows[closed] - 1.0 > WIN_EPSILON).astype(np.float64)
    wins = np.bincount(row[closed], won, minlength=rows)

    total = compounded[:, -1] - 1.0
    root = np.sqrt(PERIODS_PER_YEAR)
    with np.errstate(invalid="ignore", divide="ignore"):
        cagr = np.where(total > -1.0, (1.0 + total) ** (PERIODS_PER_YEAR / n) - 1.0, -1.0)
        return {
            "total_return": total,
            "cagr": cagr,
            "annual_volatility": std * root,
            "sharpe": np.where(std > 0, excess_mean / std, np.nan) * root,
            "sortino": np.where(downside > 0, excess_mean / downside, np.nan) * root,
            "max_drawdown": max_dd,
            "max_drawdown_duration": duration.astype(np.float64),
            "calmar": np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan),
            "win_rate": np.where(trades > 0, wins / np.maximum(trades, 1), np.nan),
            "trades": trades.astype(np.float64),
            "exposure": count / n,
        }


# -- the grid ----------------------------------------------------------------------------------


def chunks(rows: int, size: int) -> Iterator[slice]:
    for lo in range(0, rows, size):
        yield slice(lo, min(lo + size, rows))


def evaluate_grid(
    close: Array,
    family: str,
    params: Array,
    segments: Sequence[Segment] | None = None,
    cost: float = 0.0,
    risk_free: float = 0.0,
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> GridResult:
    """Every row of `params` backtested on `close`, its metrics over each segment of the
    returns (default: all of them). Signals use the whole series, so a later segment's
    positions may have been entered before it: an out-of-sample segment starts from what
    the strategy held, as it would have live. `progress(rows_done)` is called per chunk."""
    close = np.asarray(close, dtype=np.float64)
    if family not in PARAMETERS:
        raise ValueError(f"unknown strategy family {family!r}")
    params = np.asarray(params, dtype=np.float64)
    params = (
        params.reshape(len(params), -1)
        if params.size
        else params.reshape(0, len(PARAMETERS[family]))
    )
    if params.shape[1] != len(PARAMETERS[family]):
        raise ValueError(f"{family} takes {', '.join(PARAMETERS[family])}")
    r = simple_returns(close)
    segs = list(segments) if segments is not None else [(0, len(r))]
    for a, b in segs:
        if not 0 <= a < b <= len(r):
            raise ValueError(f"segment [{a}, {b}) is outside the {len(r)} returns")
    signals = _Signals(family, close, params)
    paths = [Path(r[a:b], risk_free) for a, b in segs]
    parts: list[dict[str, list[Array]]] = [{} for _ in segs]
    for rows in chunks(len(params), chunk):
        position = signals.build(params[rows])[:, :-1]  # a signal is held over the next bar
        for part, (a, b), path in zip(parts, segs, paths, strict=True):
            # a position held at the segment's first bar paid to enter if it changed there
            first = position[:, a] if a == 0 else position[:, a] != position[:, a - 1]
            values = segment_metrics(position[:, a:b], first, path, cost)
            for name, v in values.items():
                part.setdefault(name, []).append(v)
        if progress is not None:
            progress(rows.stop)
    metrics = [
        {name: np.concatenate(part[name]) if part else np.empty(0) for name in METRIC_NAMES}
        for part in parts
    ]
    return GridResult(family, params, segs, metrics)


@dataclass(frozen=True)
class GridTask:
    """One grid on one series: what `evaluate_grid` takes, as a value that can be shipped to
    a Spark executor."""

    close: Array
    family: str
    params: Array
    segments: list[Segment]
    cost: float = 0.0
    risk_free: float = 0.0


Evaluator = Callable[[Sequence[GridTask], Callable[[int], None] | None], list[GridResult]]
"""Evaluates tasks, in order, calling progress(parameter sets done across all tasks)."""


def evaluate_locally(
    tasks: Sequence[GridTask], progress: Callable[[int], None] | None = None
) -> list[GridResult]:
    """In this process, one task after the other."""
    results = []
    done = 0
    for task in tasks:

        def step(rows: int, base: int = done) -> None:
            if progress is not None:
                progress(base + rows)

        results.append(
            evaluate_grid(
                task.close,
                task.family,
                task.params,
                task.segments,
                task.cost,
                task.risk_free,
                progress=step,
            )
        )
        done += len(task.params)
    return results
