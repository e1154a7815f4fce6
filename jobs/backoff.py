"""Retry delays: exponential with a cap, spread by jitter so failed jobs do not retry in step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """`min(cap_s, base_s * 2**attempt)`, then multiplied by a factor in [1-jitter, 1+jitter]."""

    base_s: float = 1.0
    cap_s: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")

    def nominal_s(self, attempt: int) -> float:
        """The delay before jitter. Exponent clamped so huge attempt counts cannot overflow."""
        return min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), 64))

    def delay_s(self, attempt: int, rand: float | None = None) -> float:
        """The delay after failed attempt number `attempt` (1 for the first run).

        `rand` in [0, 1) picks the point in the jitter band; None draws one. Passing it keeps
        the function pure for tests.
        """
        r = random.random() if rand is None else rand  # noqa: S311 - spreading retries, not security
        return self.nominal_s(attempt) * (1.0 + self.jitter * (2.0 * r - 1.0))
