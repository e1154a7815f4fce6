"""A PgQueuer 1.6 worker as its users write one, for `bench.peers`.

    python -m bench.peer_pgqueuer --batch 10          # no-op jobs (entrypoint "noop")
    STAMP_FILE=/tmp/x python -m bench.peer_pgqueuer   # also records pickup latency

The asyncpg driver on one connection and `QueueManager.run(batch_size=…)` with its other
defaults, as PgQueuer's README shows. With STAMP_FILE set, the "stamp" entrypoint records
(the enqueue call's time in the payload, now − that time) and writes the list there on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

STAMPS: list[tuple[float, float]] = []


async def main(batch: int) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @qm.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        assert job.payload is not None
        sent = float(job.payload.decode())
        STAMPS.append((sent, time.monotonic() - sent))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, qm.shutdown.set)
    try:
        await qm.run(batch_size=batch)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=10)
    try:
        asyncio.run(main(parser.parse_args().batch))
    finally:
        if path := os.environ.get("STAMP_FILE"):
            with open(path, "w") as f:
                json.dump(STAMPS, f)
