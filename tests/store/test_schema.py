"""The database itself guards the invariants, whoever writes the row."""

import asyncio

import asyncpg
import pytest

from jobs.migrate import downgrade, head_revision, upgrade
from tests.support import SCHEMA_TABLES

VALID = {
    "kind": "'k'",
    "state": "'queued'",
}


def insert(**overrides):
    cols = {**VALID, **overrides}
    return f"INSERT INTO job ({', '.join(cols)}) VALUES ({', '.join(cols.values())})"


async def test_a_valid_hand_written_row_is_accepted(conn):
    await conn.execute(insert())
    await conn.execute(
        insert(state="'running'", lease_owner="'w'", lease_expires_at="now()", attempt="1")
    )
    await conn.execute(insert(state="'succeeded'", finished_at="now()"))


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"state": "'paused'"}, "job_state_known"),
        ({"state": "'succeeded'"}, "job_finished_iff_terminal"),
        ({"finished_at": "now()"}, "job_finished_iff_terminal"),
        ({"state": "'running'"}, "job_lease_iff_running"),
        ({"state": "'running'", "lease_owner": "'w'"}, "job_lease_iff_running"),
        ({"lease_owner": "'w'", "lease_expires_at": "now()"}, "job_lease_iff_running"),
        ({"progress": "101"}, "job_progress_percent"),
        ({"progress": "-1"}, "job_progress_percent"),
        ({"attempt": "6", "max_attempts": "5"}, "job_attempts_in_budget"),
        ({"max_attempts": "0"}, "job_attempts_in_budget"),
        ({"attempt": "-1"}, "job_attempts_in_budget"),
        ({"timeout_s": "0"}, "job_timeout_positive"),
        ({"errors": "'{}'"}, "job_errors_array"),
        ({"queue": "''"}, "job_queue_name"),
        ({"kind": "''"}, "job_kind_name"),
    ],
)
async def test_check_constraints_reject_invalid_rows(conn, overrides, constraint):
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await conn.execute(insert(**overrides))
    assert err.value.constraint_name == constraint


async def test_idempotency_keys_are_unique_per_owner(conn):
    await conn.execute(insert(idempotency_key="'x'", owner="'a'"))
    await conn.execute(insert(idempotency_key="'x'", owner="'b'"))
    await conn.execute(insert(owner="'a'"))
    await conn.execute(insert(owner="'a'"))  # no key: no uniqueness
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert(idempotency_key="'x'", owner="'a'"))


async def test_events_go_with_their_job(conn):
    job_id = await conn.fetchval(insert() + " RETURNING id")
    await conn.execute("INSERT INTO job_event (job_id, type) VALUES ($1, 'retried')", job_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO job_event (job_id, type) VALUES (-1, 'retried')")
    await conn.execute("DELETE FROM job WHERE id = $1", job_id)
    assert await conn.fetchval("SELECT count(*) FROM job_event") == 0


async def test_hot_table_storage_settings(conn):
    options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'job'")
    assert "fillfactor=80" in options
    assert "autovacuum_vacuum_scale_factor=0.01" in options


async def test_queued_and_reaper_indexes_are_partial(conn):
    rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'job'")
    defs = {r["indexname"]: r["indexdef"] for r in rows}
    assert "WHERE (state = 'queued'::text)" in defs["job_queued_idx"]
    assert "WHERE (state = 'running'::text)" in defs["job_lease_idx"]
    assert "UNIQUE" in defs["job_owner_idempotency_key_idx"]


TABLES = (
    "SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables "
    "WHERE schemaname = 'public'"
)


async def test_migrations_go_down_to_nothing_and_up_again(db_url, conn):
    assert await conn.fetchval(TABLES) == SCHEMA_TABLES
    await asyncio.to_thread(downgrade, db_url, "base")
    assert await conn.fetchval(TABLES) == ["alembic_version"]
    assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 0
    await asyncio.to_thread(upgrade, db_url)
    assert await conn.fetchval(TABLES) == SCHEMA_TABLES
    assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()


async def test_owners_move_into_their_namespace_keys_by_name_tokens_under_the_issuer(
    db_url, conn, monkeypatch
):
    """0006: a bare owner that names an API key becomes `key:NAME`, any other (a token
    user's) `jwt:ISSUER:SUB` with the issuer the migration runs under; `system` stays."""
    await asyncio.to_thread(downgrade, db_url, "0005")
    await conn.execute("INSERT INTO api_key (name, role, key_hash) VALUES ('alice', 'user', 'h1')")
    for owner in ("alice", "carol", "system"):
        await conn.execute(insert(owner=f"'{owner}'"))
    await conn.execute(
        "INSERT INTO strategy_run (job_id, owner, kind, symbol, interval, family, cost,"
        " risk_free, conventions, published, params, sample, selected, start_ts, end_ts, bars)"
        " VALUES (1, 'carol', 'strategy.optimize', 'IBM', '1d', 'sma_cross', 0, 0, '{}', false,"
        " '{}', 'in', true, now(), now(), 10)"
    )
    monkeypatch.setenv("JWT_ISSUER", "https://login.example.test")
    await asyncio.to_thread(upgrade, db_url)
    owners = await conn.fetch("SELECT owner FROM job ORDER BY id")
    assert [r["owner"] for r in owners] == [
        "key:alice",
        "jwt:https://login.example.test:carol",
        "system",
    ]
    assert await conn.fetchval("SELECT owner FROM strategy_run") == (
        "jwt:https://login.example.test:carol"
    )
    await conn.execute(insert(owner=f"'jwt:{'i' * 512}:{'s' * 256}'"))  # fits now

    await asyncio.to_thread(downgrade, db_url, "0005")
    owners = await conn.fetch("SELECT owner FROM job ORDER BY id")
    assert [r["owner"] for r in owners][:3] == ["alice", "carol", "system"]
    monkeypatch.delenv("JWT_ISSUER")
    await asyncio.to_thread(upgrade, db_url)
    owners = await conn.fetch("SELECT owner FROM job ORDER BY id")
    assert [r["owner"] for r in owners][:3] == ["key:alice", "legacy:carol", "system"]


async def test_an_upgrade_keeps_queued_running_and_finished_jobs_and_queued_ones_claimable(
    db_url, conn, store
):
    """0009: claims read `job_ready`; the upgrade gives every queued job its ready row, and
    running and finished jobs stay as they were."""
    await asyncio.to_thread(downgrade, db_url, "0008")
    for state, extra in (
        ("queued", {"priority": "3"}),
        ("queued", {"run_at": "now() - interval '1 hour'"}),
        ("running", {"attempt": "1", "lease_owner": "'w0'", "lease_expires_at": "now()"}),
        ("succeeded", {"attempt": "1", "finished_at": "now()"}),
        ("dead", {"attempt": "1", "finished_at": "now()"}),
    ):
        await conn.execute(insert(state=f"'{state}'", **extra))
    await asyncio.to_thread(upgrade, db_url)
    states = await conn.fetch("SELECT id, state FROM job ORDER BY id")
    assert [r["state"] for r in states] == ["queued", "queued", "running", "succeeded", "dead"]
    assert await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM job_ready") == [1, 2]
    claimed = await store.claim(["default"], 10, "w1", 30)
    assert [j.id for j in claimed] == [1, 2]  # priority 3 first, then the older one
    await store.retry(5)  # a replayed job gets its ready row too
    assert [j.id for j in await store.claim(["default"], 10, "w1", 30)] == [5]
    await asyncio.to_thread(downgrade, db_url, "0008")
    assert await conn.fetchval("SELECT count(*) FROM job") == 5


async def test_the_state_check_constraint_allows_exactly_the_job_states(conn):
    """`JobState` and the `job_state_known` CHECK name the same states: a state added to one
    and not the other fails here, not in production."""
    import re

    from jobs.model import JobState

    definition = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'job_state_known'"
    )
    allowed = set(re.findall(r"'([a-z_]+)'::text", definition))
    assert allowed == {s.value for s in JobState}, definition


async def test_a_fresh_schema_gives_users_the_default_quota(db_url, conn):
    """What migration 0011 writes (the tests' template opens it up; see conftest)."""
    await asyncio.to_thread(downgrade, db_url, "0010")
    await asyncio.to_thread(upgrade, db_url)
    row = await conn.fetchrow("SELECT * FROM submit_quota")
    assert row["owner"] == "*" and await conn.fetchval("SELECT count(*) FROM submit_quota") == 1
    assert (row["priority_min"], row["priority_max"], row["queues"]) == (-10, 10, None)
    assert (row["max_queued"], row["demo_kinds"]) == (10000, False)
