"""Two kinds as a platform team would write them: an async one (on the worker's loop) and a
CPU-bound one (in the worker's process pool)."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field

from conveyor import App, JobContext, Permanent

app = App()


class Greet(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    times: int = Field(default=2, ge=1, le=10)


@app.kind("acme.greet", timeout_s=30)
async def greet(ctx: JobContext, payload: Greet) -> dict[str, object]:
    for i in range(payload.times):
        await asyncio.sleep(0.05)
        ctx.progress(100 * (i + 1) // payload.times, f"greeting {i + 1}")
    if payload.name == "nobody":
        raise Permanent("there is nobody to greet")
    return {"greeting": f"hello {payload.name}", "pid": os.getpid()}


class Primes(BaseModel):
    below: int = Field(ge=2, le=2_000_000)


@app.kind("acme.primes")
def count_primes(ctx: JobContext, payload: Primes) -> dict[str, int]:
    """Plain `def`: CPU-bound, so it runs in a pool child, not on the worker's loop."""
    sieve = bytearray([1]) * payload.below
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(payload.below**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, payload.below, n)))
    return {"count": sum(sieve), "pid": os.getpid()}
