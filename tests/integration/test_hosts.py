"""Workers on other hosts: PostgreSQL runs here, each worker host is a network namespace of
its own (`ip netns`) joined to this one by a veth pair, so a host's link can be cut
(`ip link set … down`) and restored while its workers run. Outcomes are checked in the
database: a drain over two hosts, a partition longer than the lease (the jobs re-run on the
other host, the cut-off worker's stale finishes are fenced off and it goes on working), and
a host that never comes back (its `worker` rows are pruned, nothing stays running).

Needs root (CI runs the suite as root); skipped with the reason elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from conveyor.embedded import EmbeddedPostgres
from jobs.migrate import upgrade
from jobs.model import JobState, NewJob
from jobs.settings import DatabaseSettings
from jobs.store import Store
from tests.processes import IP, Processes
from tests.support import eventually, with_database

pytestmark = pytest.mark.slow

TEMPLATE = "conveyor_hosts_template"
LEASE = "2s"
PARTITION_S = 6.0  # three leases: every lease the cut-off host holds expires meanwhile


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    assert IP is not None
    return subprocess.run([IP, *args], capture_output=True, text=True, check=False)


def must(*args: str) -> None:
    done = ip(*args)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"


@dataclass(frozen=True)
class Host:
    """A worker host: a network namespace whose only link is a veth pair to this one."""

    netns: str
    link: str
    """The veth's end on this side: set down, the host is cut off."""
    address: str
    """That end's address, where the host's workers reach PostgreSQL."""

    def cut(self) -> None:
        must("link", "set", self.link, "down")

    def restore(self) -> None:
        must("link", "set", self.link, "up")


@dataclass(frozen=True)
class Network:
    subnet: str
    hosts: tuple[Host, ...]


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    """pytest-xdist processes may set up at once: one at a time picks a free subnet."""
    with (Path(tempfile.gettempdir()) / "conveyor-test-netns.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_third_octet() -> int:
    """N for a 10.231.N.0/24 no interface of this machine has an address in."""
    used = ip("-4", "-o", "addr", "show").stdout
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for n in candidates:
        if f" 10.231.{n}." not in used:
            return n
    raise AssertionError("every 10.231.N.0/24 is in use on this machine")


def add_host(name: str, index: int, octet: int) -> Host:
    """Namespace `name` with a veth pair: this side 10.231.N.(4i+1)/30, its side (4i+2)/30."""
    ours, theirs = f"{name}h", f"{name}n"  # at most 15 characters: cv + 6 hex + 2
    host = f"10.231.{octet}.{4 * index + 1}"
    peer = f"10.231.{octet}.{4 * index + 2}"
    must("link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", name)
    must("addr", "add", f"{host}/30", "dev", ours)
    must("link", "set", ours, "up")
    must("-n", name, "addr", "add", f"{peer}/30", "dev", theirs)
    must("-n", name, "link", "set", theirs, "up")
    must("-n", name, "link", "set", "lo", "up")
    return Host(name, ours, host)


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """Two worker hosts in a 10.231.N.0/24 of this run's own; removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (`ip netns add`); CI runs the suite as root")
    if IP is None:
        pytest.skip("`ip` (iproute2) is not installed")
    run = uuid.uuid4().hex[:6]
    names = [f"cv{run}{letter}" for letter in "ab"]
    hosts: list[Host] = []
    try:
        with subnet_lock():
            octet = free_third_octet()
            for index, name in enumerate(names):
                added = ip("netns", "add", name)
                if added.returncode != 0:
                    pytest.skip(f"`ip netns add` failed: {added.stderr.strip()}")
                hosts.append(add_host(name, index, octet))
        yield Network(f"10.231.{octet}.0/24", tuple(hosts))
    finally:
        for name in names:
            ip("link", "del", f"{name}h")  # gone with the namespace, unless that failed first
            ip("netns", "del", name)


@pytest.fixture(scope="module")
def server(network: Network) -> Iterator[EmbeddedPostgres]:
    """A cluster of this module's own, listening on loopback and on each host's link."""
    listen = ",".join(["127.0.0.1", *(h.address for h in network.hosts)])
    pg = EmbeddedPostgres(
        durable=False,
        settings={"listen_addresses": f"'{listen}'"},
        trust_networks=[network.subnet],
    )
    try:
        url = pg.start()
        asyncio.run(_create(url, TEMPLATE))
        upgrade(with_database(url, TEMPLATE))
        yield pg
    finally:
        pg.destroy()


async def _create(url: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(url)
    try:
        like = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{like}')
    finally:
        await conn.close()


@dataclass
class Cluster:
    store: Store
    procs: Processes
    hosts: tuple[Host, ...]
    database: str
    port: int

    def start_worker(self, host: Host, *args: str, **env: str) -> subprocess.Popen[bytes]:
        url = f"postgresql://postgres@{host.address}:{self.port}/{self.database}"
        return self.procs.start_worker_in(host.netns, url, "--processes", "0", *args, **env)

    async def worker_ids(self, *procs: subprocess.Popen[bytes]) -> list[str]:
        """The `worker` ids of these processes, once each has registered."""
        pids = [p.pid for p in procs]

        async def registered() -> dict[int, str] | None:
            for p in procs:
                assert p.poll() is None, self.procs.log(p)
            rows = await self.store.pool.fetch(
                "SELECT id, pid FROM worker WHERE pid = ANY($1::int[])", pids
            )
            return {r["pid"]: r["id"] for r in rows} if len(rows) == len(pids) else None

        found = await eventually(registered, 30)
        return [found[pid] for pid in pids]

    def events(self, proc: subprocess.Popen[bytes], event: str) -> list[dict[str, Any]]:
        """The process's JSON log lines with this event name."""
        lines = [ln for ln in self.procs.log(proc).splitlines() if ln.startswith("{")]
        return [e for e in map(json.loads, lines) if e.get("event") == event]


@pytest.fixture
async def cluster(
    server: EmbeddedPostgres, network: Network, tmp_path: Path
) -> AsyncIterator[Cluster]:
    """A fresh database cloned from the module's template, and workers that are killed and
    links that are restored at the end."""
    database = f"hosts_{uuid.uuid4().hex[:12]}"
    await _create(server.url, database, TEMPLATE)
    url = with_database(server.url, database)
    store = await Store.connect(url, db=DatabaseSettings(db_pool_min=1, db_pool_max=5))
    procs = Processes(url, tmp_path)
    try:
        yield Cluster(store, procs, network.hosts, database, server.port)
    finally:
        procs.stop_all()
        for host in network.hosts:
            host.restore()
        await store.close()
        conn = await asyncpg.connect(server.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()


UNEXPLAINED_ATTEMPTS = """
SELECT count(*) FROM job j
WHERE j.attempt <> 1 + (
    SELECT count(*) FROM job_event e
    WHERE e.job_id = j.id AND e.type IN ('lease_lost', 'released')
)
"""
"""Jobs whose attempts are not all explained: each claim after the first follows a lost
lease or a hand-back."""


async def states(store: Store) -> dict[str, int]:
    rows = await store.pool.fetch("SELECT state, count(*) AS n FROM job GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


async def db_now(store: Store) -> datetime:
    now: datetime = await store.pool.fetchval("SELECT now()")
    return now


async def held_by(store: Store, owner: str, ids: list[int], attempt: int) -> bool:
    """Every one of `ids` is running its `attempt` under `owner`'s lease."""
    n = await store.pool.fetchval(
        "SELECT count(*) FROM job WHERE id = ANY($1::bigint[]) AND state = 'running' "
        "AND lease_owner = $2 AND attempt = $3",
        ids,
        owner,
        attempt,
    )
    return bool(n == len(ids))


async def test_two_hosts_of_two_workers_drain_20000_jobs_each_once(cluster):
    store = cluster.store
    a, b = cluster.hosts
    workers = {
        host: [cluster.start_worker(host, "--lease", "3s", "--concurrency", "16") for _ in range(2)]
        for host in (a, b)
    }
    ids = {host: await cluster.worker_ids(*procs) for host, procs in workers.items()}
    await store.enqueue_many([NewJob(kind="demo.noop") for _ in range(20_000)])

    async def drained() -> bool:
        return (await states(store)) == {"succeeded": 20_000}

    await eventually(drained, 120, interval=0.5)
    # Once each: an attempt after the first only for a job handed back unstarted from a
    # worker's claim-ahead buffer (a `released` event, no attempt used up).
    assert await store.pool.fetchval(UNEXPLAINED_ATTEMPTS) == 0
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE errors <> '[]'") == 0
    lost = await store.pool.fetchval("SELECT count(*) FROM job_event WHERE type = 'lease_lost'")
    assert lost == 0

    async def counted() -> dict[str, int] | None:
        rows = await store.pool.fetch("SELECT id, jobs_done FROM worker")
        done = {r["id"]: r["jobs_done"] for r in rows}
        return done if sum(done.values()) == 20_000 else None

    done = await eventually(counted, 15)  # the heartbeats (a second apart) add them up
    for host in (a, b):
        assert all(done[w] > 0 for w in ids[host]), (host.netns, done)
    assert all(p.poll() is None for procs in workers.values() for p in procs)


async def test_a_partition_longer_than_the_lease_reruns_on_the_other_host_and_fences(cluster):
    store, procs = cluster.store, cluster.procs
    a, b = cluster.hosts
    cut_off = cluster.start_worker(a, "--lease", LEASE, "--concurrency", "8")
    [cut_off_id] = await cluster.worker_ids(cut_off)
    ids = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 6}) for _ in range(4)]
        )
    ]
    await eventually(lambda: held_by(store, cut_off_id, ids, 1), 15)
    other = cluster.start_worker(b, "--lease", LEASE, "--concurrency", "8")
    [other_id] = await cluster.worker_ids(other)

    loop = asyncio.get_running_loop()
    a.cut()  # with its jobs under way: they finish during the partition, unwritten
    cut_at = loop.time()
    # The leases expire, the other host's reaper queues the jobs again and it runs them.
    await eventually(lambda: held_by(store, other_id, ids, 2), PARTITION_S - 0.5)
    await asyncio.sleep(PARTITION_S - (loop.time() - cut_at))
    a.restore()
    restored_at = await db_now(store)

    async def all_done() -> bool:
        rows = await store.pool.fetch("SELECT state FROM job WHERE id = ANY($1::bigint[])", ids)
        return all(r["state"] == JobState.SUCCEEDED for r in rows)

    await eventually(all_done, 20)
    for job_id in ids:
        job = await store.get(job_id)
        lost = [e for e in await store.events(job_id) if e.type == "lease_lost"]
        assert job.attempt == 1 + len(lost) == 2
        [error] = job.errors
        assert error["type"] == "LeaseExpired" and cut_off_id in error["message"]
        assert job.result == {"slept_s": 6}
        assert job.started_at is not None and job.finished_at is not None
        # The second attempt's whole run, not the first attempt's finish written late.
        assert (job.finished_at - job.started_at).total_seconds() >= 6

    # Back on the network, the cut-off worker learns its leases are gone and writes nothing
    # for them: each stale finish is refused on its lease (owner and attempt) and logged.
    async def fenced() -> bool:
        refused = {(e["job_id"], e["attempt"]) for e in cluster.events(cut_off, "job.lease_lost")}
        return refused >= {(i, 1) for i in ids}

    await eventually(fenced, 20)
    assert cluster.events(other, "job.lease_lost") == []  # its finishes all went through
    finished = {(e["job_id"], e["attempt"]) for e in cluster.events(other, "job.succeeded")}
    assert finished >= {(i, 2) for i in ids}  # the other host wrote each second attempt
    assert {e["job_id"] for e in cluster.events(cut_off, "job.succeeded")}.isdisjoint(ids)

    # … and goes on working: its heartbeat resumes, it claims and finishes new jobs.
    async def heartbeating() -> bool:
        at = await store.pool.fetchval("SELECT heartbeat_at FROM worker WHERE id = $1", cut_off_id)
        return at is not None and at > restored_at

    await eventually(heartbeating, 20)
    before = await store.pool.fetchval("SELECT jobs_done FROM worker WHERE id = $1", cut_off_id)
    more = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 0.2}) for _ in range(48)]
        )
    ]

    async def more_done() -> bool:
        rows = await store.pool.fetch("SELECT state FROM job WHERE id = ANY($1::bigint[])", more)
        return all(r["state"] == JobState.SUCCEEDED for r in rows)

    await eventually(more_done, 30)

    async def counted() -> bool:
        done = await store.pool.fetchval("SELECT jobs_done FROM worker WHERE id = $1", cut_off_id)
        return bool(done > before)

    await eventually(counted, 10)
    claimed = {e["job_id"] for e in cluster.events(cut_off, "job.claimed")}
    assert claimed & set(more), "the cut-off worker claimed none of the new jobs"
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM job WHERE id = ANY($1::bigint[]) AND attempt <> 1", more
        )
        == 0
    )
    assert cut_off.poll() is None and other.poll() is None, procs.log(cut_off)


async def test_a_host_that_never_comes_back_is_pruned_and_its_jobs_rerun(cluster):
    store = cluster.store
    a, b = cluster.hosts
    prune = {"CONVEYOR_WORKER_PRUNE_AFTER_S": "3"}  # instead of max(3 × lease, 60 s)
    gone = [
        cluster.start_worker(a, "--lease", LEASE, "--concurrency", "4", **prune) for _ in range(2)
    ]
    gone_ids = await cluster.worker_ids(*gone)
    ids = [
        e.id
        for e in await store.enqueue_many(
            [NewJob(kind="demo.sleep", payload={"seconds": 5}) for _ in range(6)]
        )
    ]

    async def all_on_a() -> bool:
        n = await store.pool.fetchval(
            "SELECT count(*) FROM job WHERE state = 'running' AND lease_owner = ANY($1::text[])",
            gone_ids,
        )
        return bool(n == len(ids))

    await eventually(all_on_a, 15)
    survivor = cluster.start_worker(b, "--lease", LEASE, "--concurrency", "8", **prune)
    [survivor_id] = await cluster.worker_ids(survivor)
    a.cut()  # for good: its workers keep running, but nothing of theirs arrives again

    async def settled() -> bool:
        remaining = await store.pool.fetchval(
            "SELECT count(*) FROM worker WHERE id = ANY($1::text[])", gone_ids
        )
        return remaining == 0 and (await states(store)) == {"succeeded": len(ids)}

    await eventually(settled, 30)
    assert await store.pool.fetchval("SELECT count(*) FROM job WHERE state = 'running'") == 0
    assert await store.pool.fetchval(UNEXPLAINED_ATTEMPTS) == 0
    for job_id in ids:
        job = await store.get(job_id)
        assert [e.type for e in await store.events(job_id)].count("lease_lost") == 1
        [error] = job.errors
        assert error["type"] == "LeaseExpired" and any(w in error["message"] for w in gone_ids)
    # The survivor heartbeats every lease/3 and keeps its row.
    assert [r["id"] for r in await store.pool.fetch("SELECT id FROM worker")] == [survivor_id]
    assert all(p.poll() is None for p in gone)  # cut off, not crashed


@pytest.mark.parametrize(
    "bad", ["10.231.7.1/24", "10.231.7.0/24 trust\nhost all all 0.0.0.0/0", "*"]
)
def test_trust_networks_take_networks_only(bad):
    """Nothing but a CIDR reaches pg_hba.conf (an address with host bits, a line break, a
    wildcard are refused before initdb runs); no root needed."""
    with pytest.raises(
        ValueError, match=r"does not appear to be an IPv4 or IPv6 network|has host bits"
    ):
        EmbeddedPostgres(durable=False, trust_networks=[bad])
