"""Diagnostic job kinds, used by tests, benchmarks and operators.

| kind | payload | what it does |
|---|---|---|
| demo.noop | {} | nothing |
| demo.sleep | {seconds} | sleeps on the event loop |
| demo.fail | {times} | fails the first `times` attempts, then succeeds |
| demo.cpu | {n} | a CPU-bound loop in the process pool, checking for cancellation |
| demo.progress | {steps, interval_s} | reports progress after each step |
"""

from __future__ import annotations

import asyncio

from compute.specs import DemoCpu, DemoFail, DemoNoop, DemoProgress, DemoSleep
from jobs.handler import JSON, Cancel, JobContext


async def noop(ctx: JobContext, payload: DemoNoop) -> JSON:
    return None


async def sleep(ctx: JobContext, payload: DemoSleep) -> JSON:
    await asyncio.sleep(payload.seconds)
    return {"slept_s": payload.seconds}


async def fail(ctx: JobContext, payload: DemoFail) -> JSON:
    if ctx.attempt <= payload.times:
        raise RuntimeError(f"demo.fail: failing attempt {ctx.attempt} of the first {payload.times}")
    return {"succeeded_on_attempt": ctx.attempt}


def cpu(ctx: JobContext, payload: DemoCpu) -> JSON:
    """Pure Python arithmetic, so it really holds a core; checks for cancel every chunk."""
    chunk = 200_000
    total = 0
    done = 0
    while done < payload.n:
        if ctx.cancelled():
            raise Cancel(f"stopped after {done} of {payload.n} iterations")
        end = min(done + chunk, payload.n)
        total = (total + sum(i * i for i in range(done, end))) % 1_000_000_007
        done = end
        ctx.progress(int(done * 100 / payload.n) if payload.n else 100)
    return {"n": payload.n, "checksum": total}


async def progress(ctx: JobContext, payload: DemoProgress) -> JSON:
    for step in range(1, payload.steps + 1):
        await asyncio.sleep(payload.interval_s)
        ctx.progress(step * 100 // payload.steps, f"step {step} of {payload.steps}")
    return {"steps": payload.steps}
