"""GET /metrics: Prometheus text read back with Prometheus' own parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.metrics import Tally
from jobs.model import NewJob
from tests.support import eventually


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics, name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


async def test_metrics_show_depth_age_finished_counts_and_durations(api, store):
    await store.enqueue_many([NewJob(kind="demo.noop", queue="prices") for _ in range(3)])
    await store.enqueue(NewJob(kind="demo.noop", queue="reports"))
    await store.claim(["reports"], 1, "w", 30)
    tally = Tally()
    tally.record("prices", "demo.noop", "succeeded", 0.02)
    tally.record("prices", "demo.noop", "succeeded", 3.0)
    tally.record("prices", "demo.noop", "lease_expired", None)
    await store.add_stats(tally.take())

    r = await api.client.get("/metrics")  # no key: scrapers do not log in
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    assert value(m, "conveyor_jobs", queue="prices", state="queued") == 3
    assert value(m, "conveyor_jobs", queue="reports", state="running") == 1
    assert value(m, "conveyor_queue_oldest_job_age_seconds", queue="prices") >= 0
    ok = {"queue": "prices", "kind": "demo.noop", "outcome": "succeeded"}
    assert value(m, "conveyor_jobs_finished_total", **ok) == 2
    assert value(m, "conveyor_jobs_finished_total", **{**ok, "outcome": "lease_expired"}) == 1
    assert value(m, "conveyor_job_duration_seconds_count", **ok) == 2
    assert value(m, "conveyor_job_duration_seconds_sum", **ok) == pytest.approx(3.02)
    assert value(m, "conveyor_job_duration_seconds_bucket", **ok, le="0.05") == 1
    assert value(m, "conveyor_job_duration_seconds_bucket", **ok, le="+Inf") == 2
    assert value(m, "conveyor_workers") == 0


@pytest.mark.slow
async def test_a_real_worker_s_outcomes_reach_the_metrics(live):
    client, auth = live
    for body in (
        {"kind": "demo.noop"},
        {"kind": "demo.noop"},
        {"kind": "demo.fail", "payload": {"times": 5}, "max_attempts": 1},
    ):
        assert (await client.post("/v1/jobs", json=body, headers=auth["alice"])).status_code == 201

    async def counted():
        m = samples((await client.get("/metrics")).text)
        ok = value(
            m,
            "conveyor_jobs_finished_total",
            queue="default",
            kind="demo.noop",
            outcome="succeeded",
        )
        dead = value(
            m, "conveyor_jobs_finished_total", queue="default", kind="demo.fail", outcome="dead"
        )
        return (ok, dead) == (2, 1) and value(m, "conveyor_workers") == 1

    await eventually(counted, timeout=20, interval=0.3)


async def test_a_metrics_token_protects_metrics_when_set(db_url, monkeypatch):
    import httpx

    from api.app import create_app
    from api.settings import ApiSettings

    token = "m" * 24
    monkeypatch.setenv("CONVEYOR_METRICS_TOKEN", token)
    app = create_app(db_url, ApiSettings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conveyor") as c:
            refused = await c.get("/metrics")
            assert refused.status_code == 401 and "CONVEYOR_METRICS_TOKEN" in refused.text
            wrong = await c.get("/metrics", headers={"Authorization": "Bearer " + "x" * 24})
            assert wrong.status_code == 401
            ok = await c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and "conveyor_jobs" in ok.text
