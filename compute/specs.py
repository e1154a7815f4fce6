"""Payload models, one per job kind: the API validates with these, the worker too."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date
from types import UnionType
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class JsonInput(BaseModel):
    """A model for JSON from clients: unknown fields are refused, a number field takes a JSON
    number only, a boolean field only true or false, a date field only a string. Pydantic
    alone would read `true` as 1, `"3"` as 3, 0 as false and 0 as 1970-01-01; like JSON
    Schema, `3.0` is still a valid integer."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool | str) and _is(annotation, int, float):
            raise ValueError(f"Input should be a number, not {json.dumps(value)}")
        if _is(annotation, bool) and not isinstance(value, bool):  # pydantic takes 0, "yes"
            raise ValueError(f"Input should be true or false, not {json.dumps(value)}")
        # pydantic would read a number as Unix time; JSON Schema's "date" is a string
        if isinstance(value, int | float) and _is(annotation, date):
            raise ValueError(f"Input should be a date as YYYY-MM-DD, not {json.dumps(value)}")
        return value


def _is(annotation: Any, *types: type) -> bool:
    """One of `types`, or an optional one."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return annotation in types or (
        bool(options) and all(o in (*types, type(None)) for o in options)
    )


class _Spec(JsonInput):
    pass


class DemoNoop(_Spec):
    """`demo.noop`: does nothing; for throughput and latency measurements."""


class DemoSleep(_Spec):
    """`demo.sleep`: waits `seconds` on the event loop (cancellable at any time)."""

    seconds: float = Field(default=1.0, ge=0, le=86_400)


class DemoFail(_Spec):
    """`demo.fail`: raises on the first `times` attempts, then succeeds."""

    times: int = Field(default=1, ge=0, le=1000)


class DemoCpu(_Spec):
    """`demo.cpu`: a CPU-bound loop of `n` iterations in the worker's process pool."""

    n: int = Field(default=5_000_000, ge=0, le=10_000_000_000)


class DemoProgress(_Spec):
    """`demo.progress`: `steps` steps of `interval_s` each, reporting progress after each."""

    steps: int = Field(default=10, ge=1, le=10_000)
    interval_s: float = Field(default=0.5, ge=0, le=3600)


# -- research kinds ---------------------------------------------------------------------------

SYMBOL = r"^[A-Z0-9][A-Z0-9.=^-]{0,31}$"
Symbol = Annotated[str, Field(pattern=SYMBOL, description="upper case, e.g. AAPL, BRK-B, ES=F")]
Family = Literal["ma_crossover", "rsi_reversion", "donchian_breakout", "bollinger_reversion"]
Metric = Literal["sharpe", "sortino", "cagr", "total_return", "calmar"]
"""What an optimization or a leaderboard can rank by (higher is better)."""
AnyMetric = Literal[
    "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_duration", "calmar", "win_rate", "trades", "exposure",
]  # fmt: skip
METRIC_NAMES: tuple[str, ...] = get_args(AnyMetric)
"""Every metric a backtest reports (compute.backtest.Metrics), in the order stored."""
COUNT_METRICS = frozenset({"trades", "max_drawdown_duration"})
"""Metrics that count (trades, bars): served as integers, never as `43.0`."""
PatternName = Literal[
    "engulfing", "hammer", "shooting_star", "doji", "morning_star", "evening_star",
    "volatility_low", "volatility_normal", "volatility_high",
]  # fmt: skip
"""What patterns.analyze stores (compute.patterns.PATTERNS; a test keeps them equal)."""
FAMILY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "ma_crossover": ("fast", "slow"),
    "rsi_reversion": ("period", "low", "high"),
    "donchian_breakout": ("window",),
    "bollinger_reversion": ("window", "k"),
}
WHOLE_PARAMETERS = frozenset({"fast", "slow", "period", "window"})
DEFAULT_GRIDS: dict[str, dict[str, dict[str, float]]] = {
    "ma_crossover": {
        "fast": {"start": 5, "stop": 50, "step": 5},
        "slow": {"start": 20, "stop": 200, "step": 20},
    },
    "rsi_reversion": {
        "period": {"start": 7, "stop": 21, "step": 7},
        "low": {"start": 20, "stop": 35, "step": 5},
        "high": {"start": 55, "stop": 75, "step": 5},
    },
    "donchian_breakout": {"window": {"start": 10, "stop": 100, "step": 10}},
    "bollinger_reversion": {
        "window": {"start": 10, "stop": 50, "step": 10},
        "k": {"start": 1.0, "stop": 3.0, "step": 0.5},
    },
}
"""What `strategy.optimize` searches when the payload gives no grid; also what
`strategy.discover` samples from."""
PARAMETER_BOUNDS: dict[str, tuple[float, float]] = {
    "fast": (2, 500),
    "slow": (3, 1000),
    "period": (2, 250),
    "window": (2, 500),
    "low": (0, 100),
    "high": (0, 100),
    "k": (0.1, 10),
}
MAX_GRID = 20_000
"""Parameter sets in one optimization's grid."""
MAX_RUNS = 200_000
"""Parameter sets × symbols in one optimization: every one is stored as two rows."""


class ParamRange(JsonInput):
    """Values from `start` to `stop` inclusive, `step` apart."""

    start: float
    stop: float
    step: float = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop:g}) is below start ({self.start:g})")
        if (self.stop - self.start) / self.step > MAX_GRID:
            raise ValueError(f"more than {MAX_GRID} values: raise the step")
        return self

    def values(self) -> list[float]:
        count = int(round((self.stop - self.start) / self.step, 9)) + 1
        values = [round(self.start + i * self.step, 10) for i in range(count)]
        if len(set(values)) != len(values):
            raise ValueError(f"the step {self.step:g} is too small: values repeat")
        return values


def grid_values(family: str, grid: dict[str, ParamRange]) -> dict[str, list[float]]:
    """Each parameter's values; ValueError naming what is wrong."""
    names = FAMILY_PARAMETERS[family]
    unknown = sorted(set(grid) - set(names))
    if unknown:
        raise ValueError(
            f"{family} has no parameter {', '.join(unknown)}; it takes {', '.join(names)}"
        )
    missing = [n for n in names if n not in grid]
    if missing:
        raise ValueError(f"the grid lacks {', '.join(missing)} ({family} takes {', '.join(names)})")
    values: dict[str, list[float]] = {}
    for name in names:
        lo, hi = PARAMETER_BOUNDS[name]
        values[name] = grid[name].values()
        for v in values[name]:
            if name in WHOLE_PARAMETERS and v != int(v):
                raise ValueError(f"{name} takes whole numbers, not {v:g}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], not {v:g}")
    size = math.prod(len(axis) for axis in values.values())
    if size > MAX_GRID:
        raise ValueError(f"the grid has {size} parameter sets; at most {MAX_GRID} are allowed")
    return values


def parameter_sets(family: str, values: Mapping[str, Sequence[float]]) -> list[tuple[float, ...]]:
    """Every combination of `values`, in FAMILY_PARAMETERS order, minus those the family
    cannot use (fast ≥ slow, low ≥ high)."""
    names = FAMILY_PARAMETERS[family]
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"{family} needs values for {', '.join(missing)}")
    sets = list(itertools.product(*(values[n] for n in names)))
    if family == "ma_crossover":
        sets = [s for s in sets if s[0] < s[1]]
    elif family == "rsi_reversion":
        sets = [s for s in sets if s[1] < s[2]]
    return sets


class _Window(_Spec):
    start: date | None = Field(default=None, description="first bar's date (default: earliest)")
    end: date | None = Field(default=None, description="last bar's date (default: latest)")

    @model_validator(mode="after")
    def _ordered_window(self) -> Self:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end: {self.end} is before start ({self.start})")
        return self


class PricesIngest(_Window):
    """`prices.ingest`: fetch daily bars and upsert them into `price_bar`; a symbol that fails
    is reported in the result and the others are still stored."""

    symbols: list[Symbol] = Field(min_length=1, max_length=500)
    interval: Literal["1d"] = "1d"
    provider: Literal["sample", "csv", "synthetic", "yahoo"] = Field(
        default="sample",
        description="sample: real daily prices bundled with Conveyor (AAPL, FB, GOOG, IBM, "
        "MSFT, 2000–2013); csv: files in the worker's CONVEYOR_CSV_DIR; synthetic: seeded "
        "random walks for load tests, not market data; yahoo: Yahoo Finance (needs the "
        "`yahoo` extra and network)",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="synthetic only")


class _Research(_Window):
    cost: float = Field(default=0.0005, ge=0, le=0.05, description="per trade, 0.0005 = 5 bp")
    risk_free: float = Field(default=0.0, ge=-0.05, le=0.5, description="annual")
    interval: Literal["1d"] = "1d"


class StrategyOptimize(_Research):
    """`strategy.optimize`: the whole grid of one family on each symbol, chosen on the
    in-sample bars by `metric` and scored on the out-of-sample ones that follow."""

    symbols: list[Symbol] = Field(min_length=1, max_length=50)
    family: Family = "ma_crossover"
    grid: dict[str, ParamRange] | None = Field(
        default=None, description="per parameter {start, stop, step}; default DEFAULT_GRIDS"
    )
    metric: Metric = "sharpe"
    split: float = Field(
        default=0.7,
        ge=0.2,
        le=0.9,
        description="in-sample share of the daily returns (bars − 1), the first part; the "
        "rest is out of sample (each side keeps at least 2)",
    )
    publish: bool = Field(
        default=False,
        description="put the chosen strategies on the shared leaderboard (admins only)",
    )

    @model_validator(mode="after")
    def _grid_fits(self) -> StrategyOptimize:
        # Messages from a check of the whole payload start with the field they concern, which
        # the API reports as the field (pydantic gives such errors no location of their own).
        try:
            size = len(self.parameter_sets())
        except ValueError as exc:
            raise ValueError(f"grid: {exc}") from None
        if size == 0:
            raise ValueError("grid: the grid has no usable parameter set (fast < slow, low < high)")
        if size * len(self.symbols) > MAX_RUNS:
            raise ValueError(
                f"grid: {size} parameter sets × {len(self.symbols)} symbols is over "
                f"{MAX_RUNS} runs: split the job"
            )
        return self

    def parameter_values(self) -> dict[str, list[float]]:
        grid = self.grid
        if grid is None:
            grid = {k: ParamRange(**v) for k, v in DEFAULT_GRIDS[self.family].items()}
        return grid_values(self.family, grid)

    def parameter_sets(self) -> list[tuple[float, ...]]:
        return parameter_sets(self.family, self.parameter_values())


class StrategyDiscover(_Research):
    """`strategy.discover`: `budget` random parameter sets per symbol, across `families`,
    each walked forward over `folds` out-of-sample windows; the ones that beat buy-and-hold
    there after costs are stored as discovered strategies."""

    symbols: list[Symbol] = Field(min_length=1, max_length=50)
    families: list[Family] = Field(
        default=["ma_crossover", "rsi_reversion", "donchian_breakout", "bollinger_reversion"],
        min_length=1,
        max_length=4,
    )
    budget: int = Field(
        default=200,
        ge=1,
        le=20_000,
        description="parameter sets tried per symbol, shared across `families` (not per family)",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    folds: int = Field(default=3, ge=1, le=10, description="walk-forward test windows")
    metric: Metric = "sharpe"
    publish: bool = Field(
        default=False,
        description="put the discovered strategies on the shared leaderboard (admins only)",
    )

    @field_validator("families")
    @classmethod
    def _distinct(cls, families: list[str]) -> list[str]:
        if len(set(families)) != len(families):
            raise ValueError("each family may be named once")
        return families


class PatternsAnalyze(_Spec):
    """`patterns.analyze`: candlestick patterns and volatility regimes of stored bars."""

    symbols: list[Symbol] = Field(min_length=1, max_length=500)
    since: date | None = Field(default=None, description="only patterns on or after this day")
    interval: Literal["1d"] = "1d"


class LeaderboardRefresh(_Spec):
    """`leaderboard.refresh`: rank the selected strategies (an optimization's best, the
    discovered ones) by their out-of-sample `metric` into a new leaderboard snapshot."""

    metric: Metric = "sharpe"
    window_days: int | None = Field(
        default=None, ge=1, le=36_500, description="only strategies found in the last N days"
    )
    limit: int = Field(default=50, ge=1, le=1000)


SHARED_KINDS = frozenset({"prices.ingest", "patterns.analyze", "leaderboard.refresh"})
"""Kinds that write what every user reads (prices, patterns, the leaderboard): only admins
and the platform's own schedules may run them."""


def admin_only(kind: str, payload: Mapping[str, Any]) -> str | None:
    """Why only an admin may submit this job, or None when anyone may."""
    if kind in SHARED_KINDS:
        return f"{kind} writes data every user reads"
    if payload.get("publish"):
        return f"publish puts {kind}'s strategies on the shared leaderboard"
    return None


SPECS: dict[str, type[BaseModel]] = {
    "demo.noop": DemoNoop,
    "demo.sleep": DemoSleep,
    "demo.fail": DemoFail,
    "demo.cpu": DemoCpu,
    "demo.progress": DemoProgress,
    "prices.ingest": PricesIngest,
    "strategy.optimize": StrategyOptimize,
    "strategy.discover": StrategyDiscover,
    "patterns.analyze": PatternsAnalyze,
    "leaderboard.refresh": LeaderboardRefresh,
}
"""Every job kind's payload model, by kind: the API validates submissions with these."""
