"""The research computations, as pure functions of prices and parameters: what the kinds in
`kinds.research` run between loading their inputs and storing their outputs.

- `optimize`: a family's whole grid on one series, chosen in-sample, scored out-of-sample.
- `walk_forward`: anchored walk-forward of one family on one series: at each fold the best
  of the sampled parameter sets on everything before the fold is traded through the fold;
  the stitched out-of-sample record is compared with buy-and-hold over the same bars.
- `rank`: the leaderboard's order.

Deterministic: the same inputs (and seed) give the same outputs, bit for bit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compute.backtest import Metrics, metrics, strategy_returns
from compute.curves import Fold, stitch
from compute.grid import PARAMETERS, GridResult, GridTask
from compute.specs import METRIC_NAMES, WHOLE_PARAMETERS

Array = NDArray[np.float64]
Progress = Callable[[int], None]
"""Called with the parameter sets done so far; may raise to stop (a cancel)."""

SEARCH_SPACES: dict[str, dict[str, Sequence[float]]] = {
    "ma_crossover": {"fast": range(5, 51), "slow": range(20, 201)},
    "rsi_reversion": {
        "period": range(5, 31),
        "low": range(10, 41),
        "high": range(55, 91),
    },
    "donchian_breakout": {"window": range(5, 201)},
    "bollinger_reversion": {
        "window": range(5, 101),
        "k": [round(0.5 + 0.1 * i, 1) for i in range(31)],
    },
}
"""Where `strategy.discover` samples parameter sets from."""


def finite(value: float) -> float | None:
    """JSON has no NaN or infinity: an undefined metric is null."""
    return float(value) if math.isfinite(value) else None


def best_index(values: Array) -> int | None:
    """The first row with the highest value, ignoring undefined ones; None if all are."""
    if not np.isfinite(values).any():
        return None
    return int(np.nanargmax(np.where(np.isfinite(values), values, -np.inf)))


def row_metrics(result: GridResult, segment: int, row: int) -> dict[str, float | None]:
    return {name: finite(result.metrics[segment][name][row]) for name in METRIC_NAMES}


def params_of(family: str, row: Sequence[float]) -> dict[str, Any]:
    return {
        n: int(v) if n in WHOLE_PARAMETERS else float(v)
        for n, v in zip(PARAMETERS[family], row, strict=True)
    }


@dataclass(frozen=True)
class Optimized:
    result: GridResult
    """Segment 0 in-sample, segment 1 out-of-sample."""
    split: int
    """Returns before this index are in-sample."""
    best: int | None
    """The row chosen in-sample (None: the metric is undefined for every row)."""


def split_at(returns: int, share: float) -> int:
    """Index of the first out-of-sample return; both sides keep at least 2 returns."""
    return min(max(round(returns * share), 2), returns - 2)


def optimize_task(
    close: Array, family: str, params: Array, split: float, cost: float, risk_free: float
) -> tuple[GridTask, int]:
    """The grid over the in-sample and out-of-sample returns, and where they split."""
    n = len(close) - 1
    cut = split_at(n, split)
    return GridTask(close, family, params, [(0, cut), (cut, n)], cost, risk_free), cut


def choose(result: GridResult, cut: int, metric: str) -> Optimized:
    """The best row in-sample by `metric`."""
    return Optimized(result, cut, best_index(result.metrics[0][metric]))


def heatmap(
    family: str, values: dict[str, list[float]], params: Array, scores: Array
) -> dict[str, Any]:
    """The chosen metric over the grid, for a heatmap: one axis per parameter, in the
    family's parameter order (a list, because the result is stored as jsonb, which orders an
    object's keys its own way), and an N-d nested list of values in the same order (null
    where the combination is not usable or the metric undefined)."""
    names = PARAMETERS[family]
    shape = tuple(len(values[n]) for n in names)
    cube = np.full(shape, np.nan)
    index = [
        {v: i for i, v in enumerate(values[n])} for n in names
    ]  # parameter value → position on its axis
    for row, score in zip(params, scores, strict=True):
        cube[tuple(index[k][float(v)] for k, v in enumerate(row))] = score
    cells: Any = np.where(np.isfinite(cube), cube, np.nan).tolist()
    axes = [{"name": n, "values": values[n]} for n in names]
    return {"axes": axes, "values": _nulls(cells)}


def _nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return finite(value)


@dataclass(frozen=True)
class WalkForward:
    family: str
    folds: list[tuple[int, int]]
    """[first, last) return index of each test window."""
    chosen: list[dict[str, Any]]
    """The parameters traded in each fold (chosen on all bars before it)."""
    returns: Array
    """The stitched out-of-sample strategy returns, after costs."""
    positions: Array
    strategy: Metrics
    benchmark: Metrics
    """Buy-and-hold over the same bars."""
    metric: str

    @property
    def beats_benchmark(self) -> bool:
        mine = getattr(self.strategy, self.metric)
        theirs = getattr(self.benchmark, self.metric)
        return bool(math.isfinite(mine) and (not math.isfinite(theirs) or mine > theirs))


def fold_bounds(returns: int, folds: int) -> list[tuple[int, int]]:
    """Anchored walk-forward: the second half of the returns cut into contiguous test windows
    of at least 2 returns each — `folds` of them, or fewer when the series is too short; each
    is traded with what the bars before it chose. Empty when not even one fits."""
    start = returns // 2
    for count in range(min(folds, (returns - start) // 2), 0, -1):
        edges = np.linspace(start, returns, count + 1).round().astype(int)
        bounds = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        if all(b - a >= 2 for a, b in bounds):
            return bounds
    return []


def sample_params(family: str, budget: int, rng: np.random.Generator) -> Array:
    """Up to `budget` distinct usable parameter sets from the family's search space."""
    space = SEARCH_SPACES[family]
    names = PARAMETERS[family]
    draws = max(budget * 4, 64)  # oversample: some combinations are unusable (fast ≥ slow)
    columns = [rng.choice(np.asarray(space[n], dtype=np.float64), draws) for n in names]
    sets = np.stack(columns, axis=1)
    if family == "ma_crossover":
        sets = sets[sets[:, 0] < sets[:, 1]]
    elif family == "rsi_reversion":
        sets = sets[sets[:, 1] < sets[:, 2]]
    _, first = np.unique(sets, axis=0, return_index=True)
    return sets[np.sort(first)][:budget]


def training_task(
    close: Array, family: str, candidates: Array, folds: int, cost: float, risk_free: float
) -> GridTask | None:
    """The candidates over everything before each fold (None: too short for one fold)."""
    bounds = fold_bounds(len(close) - 1, folds)
    if not bounds or len(candidates) == 0:
        return None
    return GridTask(close, family, candidates, [(0, a) for a, _ in bounds], cost, risk_free)


def walk_forward(
    close: Array,
    family: str,
    candidates: Array,
    folds: int,
    trained: GridResult,
    metric: str,
    cost: float,
    risk_free: float,
) -> WalkForward:
    """Trade each fold with the candidate that `trained` (the `training_task`'s result) ranks
    best on the bars before it."""
    bounds = fold_bounds(len(close) - 1, folds)
    chosen: list[dict[str, Any]] = []
    plan: list[Fold] = []
    for fold, (a, b) in enumerate(bounds):
        row = best_index(trained.metrics[fold][metric])
        params = params_of(family, candidates[0 if row is None else row])
        plan.append(Fold(a, b, params, traded=row is not None))  # undefined in-sample: flat
        chosen.append({"from": a, "to": b, "params": params, "traded": row is not None})
    returns, positions = stitch(close, family, plan, cost)
    hold_r, hold_p = strategy_returns(close, np.ones(len(close)), cost)
    first, last = bounds[0][0], bounds[-1][1]
    return WalkForward(
        family=family,
        folds=bounds,
        chosen=chosen,
        returns=returns,
        positions=positions,
        strategy=metrics(returns, positions, risk_free),
        benchmark=metrics(hold_r[first:last], hold_p[first:last], risk_free),
        metric=metric,
    )


def rank(candidates: Sequence[dict[str, Any]], metric: str, limit: int) -> list[dict[str, Any]]:
    """The leaderboard: one entry per distinct strategy (symbol, family, parameters), its
    newest run counting, ordered by `metric` (highest first, undefined left out), then by
    id so equal scores have a stable order."""
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in candidates:
        key = (c["symbol"], c["family"], _canonical(c["params"]))
        if key not in newest or c["id"] > newest[key]["id"]:
            newest[key] = c
    scored = [c for c in newest.values() if c.get(metric) is not None and math.isfinite(c[metric])]
    scored.sort(key=lambda c: (-c[metric], c["id"]))
    return [{**c, "rank": i + 1, "score": c[metric]} for i, c in enumerate(scored[:limit])]


def _canonical(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={float(v)!r}" for k, v in sorted(params.items()))
