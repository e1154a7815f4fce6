"""A Conveyor worker with one more kind, `bench.stamp`, for `bench.peers`' pickup latency.

    STAMP_FILE=/tmp/x python -m bench.peer_conveyor --concurrency 10

The same runtime and options as `conveyor worker` (`worker.runtime.serve`); the handler
records (the enqueue call's time in the payload, now − that time) and the list is written on
exit.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from pydantic import BaseModel

from jobs.logging import configure_logging
from worker.registry import default_registry
from worker.runtime import run_worker
from worker.settings import WorkerSettings

STAMPS: list[tuple[float, float]] = []


class Stamp(BaseModel):
    t: float


async def stamp(ctx: object, payload: Stamp) -> None:
    STAMPS.append((payload.t, time.monotonic() - payload.t))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=10)
    configure_logging()
    registry = default_registry()
    registry.register("bench.stamp", stamp, Stamp)
    settings = WorkerSettings(concurrency=parser.parse_args().concurrency, processes=0)
    try:
        run_worker(os.environ["DATABASE_URL"], registry, settings)
    finally:
        with open(os.environ["STAMP_FILE"], "w") as f:
            json.dump(STAMPS, f)
