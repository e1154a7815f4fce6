import asyncio
import random

import pytest

from jobs.backoff import Backoff
from jobs.db import UNAVAILABLE_BACKOFF, until_available


def test_nominal_delay_doubles_per_attempt_until_the_cap():
    b = Backoff(base_s=2.0, cap_s=100.0, jitter=0.0)
    assert [b.nominal_s(a) for a in range(0, 7)] == [2, 4, 8, 16, 32, 64, 100]
    assert b.nominal_s(10_000) == 100.0  # no overflow for absurd attempt counts


@pytest.mark.parametrize("attempt", [0, 1, 3, 9, 40])
def test_jitter_stays_inside_its_band(attempt):
    b = Backoff(base_s=1.0, cap_s=300.0, jitter=0.25)
    nominal = b.nominal_s(attempt)
    assert b.delay_s(attempt, rand=0.0) == pytest.approx(nominal * 0.75)
    assert b.delay_s(attempt, rand=0.5) == pytest.approx(nominal)
    assert b.delay_s(attempt, rand=0.999999) == pytest.approx(nominal * 1.25, rel=1e-5)
    for _ in range(1000):
        assert nominal * 0.75 <= b.delay_s(attempt) <= nominal * 1.25


def test_jitter_spreads_delays_across_the_band():
    random.seed(7)
    b = Backoff(base_s=10.0, cap_s=1000.0, jitter=0.2)
    delays = [b.delay_s(2) for _ in range(2000)]
    nominal = 40.0
    assert len({round(d, 6) for d in delays}) > 1900  # not in step
    assert min(delays) < nominal * 0.82 and max(delays) > nominal * 1.18  # reaches both edges
    lower = sum(d < nominal for d in delays) / len(delays)
    assert 0.45 < lower < 0.55  # centred on the nominal delay


def test_no_jitter_is_exact():
    assert Backoff(base_s=1.5, cap_s=10, jitter=0).delay_s(1) == 3.0


@pytest.mark.parametrize(
    "kwargs", [{"base_s": 0}, {"base_s": 5, "cap_s": 1}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


async def test_until_available_waits_out_transient_errors_and_raises_the_rest_at_once():
    tries: list[float] = []

    async def refused_once() -> str:
        tries.append(asyncio.get_running_loop().time())
        if len(tries) == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return "connected"

    assert await until_available(refused_once, "test.db_unavailable") == "connected"
    waited = tries[1] - tries[0]
    assert UNAVAILABLE_BACKOFF.delay_s(0, 0.0) <= waited < UNAVAILABLE_BACKOFF.delay_s(0, 1.0) + 0.2

    async def wrong() -> None:
        tries.append(0.0)
        raise ValueError("database 'nosuchdb' does not exist")

    with pytest.raises(ValueError, match="nosuchdb"):
        await until_available(wrong, "test.db_unavailable")
    assert len(tries) == 3  # tried once
