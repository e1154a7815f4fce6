"""`GET /metrics`: Prometheus text, read from the database on each scrape, so every API
process serves the same figures whichever one Prometheus reaches.

- conveyor_jobs{queue,state}: queued and running jobs now (gauge)
- conveyor_queue_oldest_job_age_seconds{queue}: how long the oldest ready job has waited
- conveyor_jobs_finished_total{queue,kind,outcome}: written by workers (`jobs.metrics`)
- conveyor_job_duration_seconds{queue,kind,outcome}: how long handlers ran (histogram)
- conveyor_workers: live worker processes
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from jobs.metrics import DURATION_BUCKETS_S, cumulative
from jobs.store import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Scrape:
    """The families of one scrape, in the shape `generate_latest` reads."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


async def render(store: Store) -> bytes:
    queues = await store.queue_stats(owner=None)
    stats = await store.job_stats()
    workers = await store.live_workers()

    depth = GaugeMetricFamily(
        "conveyor_jobs", "Jobs queued or running now.", labels=["queue", "state"]
    )
    oldest = GaugeMetricFamily(
        "conveyor_queue_oldest_job_age_seconds",
        "How long the oldest job ready to run has waited (0: none waiting).",
        labels=["queue"],
    )
    for q in queues:
        depth.add_metric([q["queue"], "queued"], q["queued"])
        depth.add_metric([q["queue"], "running"], q["running"])
        oldest.add_metric([q["queue"]], q["oldest_queued_age_s"] or 0.0)

    finished = CounterMetricFamily(
        "conveyor_jobs_finished",
        "Attempts that ended, by outcome: succeeded, retried, snoozed, released, "
        "lease_expired, cancelled, dead.",
        labels=["queue", "kind", "outcome"],
    )
    duration = HistogramMetricFamily(
        "conveyor_job_duration_seconds",
        "How long a handler ran, claim to outcome.",
        labels=["queue", "kind", "outcome"],
    )
    bounds = [*(str(b) for b in DURATION_BUCKETS_S), "+Inf"]
    for (queue, kind, outcome), counts in stats.items():
        finished.add_metric([queue, kind, outcome], counts.finished)
        timed = cumulative(counts.buckets)
        if timed[-1]:
            duration.add_metric(
                [queue, kind, outcome],
                buckets=list(zip(bounds, timed, strict=True)),
                sum_value=counts.duration_sum_s,
            )

    live = GaugeMetricFamily("conveyor_workers", "Worker processes with a recent heartbeat.")
    live.add_metric([], len(workers))
    return generate_latest(_Scrape([depth, oldest, finished, duration, live]))
