"""The statements that carry the queue, each in one named place with the reason for its shape.

Conventions:
- `$now` parameters are `coalesce($n, now())`: production passes NULL and gets the
  database's clock (one clock for every worker); tests pass a frozen time.
- JSON goes in as text and is cast in SQL (`$n::text::jsonb`), so these statements also run
  on an application's own connection, which has no jsonb codec registered.
- Row locks are `FOR NO KEY UPDATE`: nothing here changes a key, and the weaker lock does not
  conflict with the KEY SHARE lock that inserting a `job_event` row (foreign key) takes.
"""

from __future__ import annotations

from jobs.metrics import DURATION_BUCKETS_S
from jobs.model import CLAIMED_COLUMNS

NOTIFY_CHANNEL = "conveyor_jobs"
"""Payload: the queue name. Postgres folds identical notifications in one transaction, so a
bulk enqueue wakes each queue's listeners once."""

CHANGES_CHANNEL = "conveyor_job_changes"
"""Payload: the ids, comma-separated, of the jobs whose state or progress one statement
changed, or `*` when they would not fit in a notification (8,000 bytes). One notification per
statement, however many rows: listeners (the API's streams) re-read the rows they follow."""

CHANGES_PAYLOAD_LIMIT = 7900
"""The longest CHANGES_CHANNEL payload sent: Postgres refuses one of 8,000 bytes or more."""

CHANGES_MAX_PAYLOADS = 16
"""Past this many payloads for one send (`jobs.wake.Notices`), the one wildcard instead."""


def _notify_changes(source: str) -> str:
    """A CTE that sends one CHANGES_CHANNEL notification for the ids in `source`. A query
    must reference it (`WHERE (SELECT count(n) FROM changes_notified) >= 0`): Postgres does
    not run a plain SELECT CTE that nothing reads."""
    return f"""changes_notified AS (
    SELECT pg_notify('{CHANGES_CHANNEL}',
                     CASE WHEN length(ids) > {CHANGES_PAYLOAD_LIMIT} THEN '*' ELSE ids END)::text
           AS n
    FROM (SELECT string_agg(id::text, ',') AS ids FROM {source}) c
    WHERE ids IS NOT NULL
)"""


_SENT = "(SELECT count(n) FROM changes_notified) >= 0"

READY_HALVES = (0, 1)
"""The partitions of `job_ready`, named `job_ready_<n>` (migration 0009)."""

CURRENT_HALF = "(SELECT last_value FROM job_ready_generation)::smallint"
"""The half that new ready rows go to. A sequence, because reading one takes no row lock and
leaves no row version behind, whatever holds the vacuum horizon."""


TURN_QUANTUM = "interval '1 millisecond'"
"""How far apart an owner's turns are at weight 1 (weight 2: half as far)."""


LANE_OF_KIND = "coalesce((SELECT c.lane FROM kind_control c WHERE c.kind = {kind}), 0::smallint)"
"""The lane a job of `{kind}` is claimed from: its kind's (migration 0016), or 0."""


def _ready_one(source: str) -> str:
    """`_ready` for a statement that makes one job queued: the same turn, from scalar
    subqueries instead of grouped ones (a single enqueue's plan is half the size, and
    measured some 150 µs faster)."""
    lane = LANE_OF_KIND.format(kind="src.kind")
    return f"""ready AS (
    INSERT INTO job_ready (id, queue, priority, run_at, owner, turn, lane, generation)
    SELECT s.id, s.queue, s.priority, s.run_at, s.owner,
           CASE WHEN s.run_at <= now() THEN greatest(
               coalesce((SELECT min(r.turn) FROM job_ready r
                         WHERE r.queue = s.queue AND r.lane = s.lane
                           AND r.priority = s.priority AND r.turn IS NOT NULL), now()),
               (SELECT max(r.turn) FROM job_ready r
                WHERE r.queue = s.queue AND r.lane = s.lane AND r.owner = s.owner
                  AND r.turn IS NOT NULL)
           ) + {TURN_QUANTUM}
               / coalesce((SELECT w.weight FROM owner_share w WHERE w.owner = s.owner), 1) END,
           s.lane, {CURRENT_HALF}
    FROM (SELECT src.*, {lane} AS lane FROM {source} src) s
)"""


def _ready(source: str, where: str = "true") -> str:
    """CTEs that give every row of `source` (id, queue, priority, run_at, owner, kind) that
    has just become queued its row in `job_ready`, which is what claims read. Every
    statement that makes a job queued includes them, so the two are written together or not
    at all.

    A job due now gets its turn (fair share, migration 0015): the owner's last turn in the
    queue's lane or the lane's current turn (the earliest turn waiting at that priority; now
    if none is), whichever is later, plus one quantum over the owner's weight for each of its
    jobs in this statement. An owner with a backlog is spaced out; one who just arrived
    starts at the head, one quantum behind it, and is owed nothing for the time it had no
    jobs. Turns are virtual time: a backlog's run ahead of the clock, and that is fine, as
    only their order counts. A job due later gets no turn yet (see CLAIM)."""
    return f"""ready_rows AS MATERIALIZED (
    SELECT id, queue, priority, run_at, owner, lane, run_at > now() AS later,
           row_number() OVER (PARTITION BY queue, lane, owner, run_at > now() ORDER BY id) AS nth
    FROM (SELECT src.*, {LANE_OF_KIND.format(kind="src.kind")} AS lane
          FROM {source} src WHERE {where}) s
), ready_owners AS MATERIALIZED (
    SELECT o.queue, o.lane, o.owner,
           (SELECT max(r.turn) FROM job_ready r
            WHERE r.queue = o.queue AND r.lane = o.lane AND r.owner = o.owner
              AND r.turn IS NOT NULL) AS last,
           coalesce((SELECT s.weight FROM owner_share s WHERE s.owner = o.owner), 1) AS weight
    FROM (SELECT DISTINCT queue, lane, owner FROM ready_rows WHERE NOT later) o
), ready_heads AS MATERIALIZED (
    SELECT h.queue, h.lane, h.priority,
           coalesce((SELECT min(r.turn) FROM job_ready r
                     WHERE r.queue = h.queue AND r.lane = h.lane AND r.priority = h.priority
                       AND r.turn IS NOT NULL), now()) AS head
    FROM (SELECT DISTINCT queue, lane, priority FROM ready_rows WHERE NOT later) h
), ready AS (
    INSERT INTO job_ready (id, queue, priority, run_at, owner, turn, lane, generation)
    SELECT s.id, s.queue, s.priority, s.run_at, s.owner,
           CASE WHEN NOT s.later
                THEN greatest(h.head, o.last) + s.nth * {TURN_QUANTUM} / o.weight END,
           s.lane, {CURRENT_HALF}
    FROM ready_rows s
    LEFT JOIN ready_owners o ON o.queue = s.queue AND o.lane = s.lane AND o.owner = s.owner
    LEFT JOIN ready_heads h
           ON h.queue = s.queue AND h.lane = s.lane AND h.priority = s.priority
)"""


_JOB_INSERT_COLUMNS = (
    "queue, kind, payload, priority, run_at, max_attempts, timeout_s, idempotency_key, owner"
)

_DUE_NOW = "ins.run_at <= now()"
"""Whether an inserted job (`ins`) is due at once: only those wake the workers."""


# 5. enqueue (one job). A job's start is `run_at`, or `run_after_s` seconds after the
# database's clock (the API's `delay_s`), or now. ON CONFLICT against the per-owner key
# index turns a repeated key into a no-op instead of an error. When that happens the caller
# looks the existing job up in a *second* statement: this statement's snapshot predates the
# concurrent insert it waited on, so it could not see that row. pg_notify sits in the select
# list so it runs once per inserted row (one row here), and only for a job that is due (one
# due later is found by the workers' poll); a rolled-back transaction sends nothing. The
# quiet form says instead whether the job is due (`due`): the caller wakes after the commit.
def _enqueue_one(returning: str, notify: bool = True) -> str:
    wake = f"{_DUE_NOW} THEN pg_notify('{NOTIFY_CHANNEL}', queue)::text END AS notified"
    tail = f", CASE WHEN {wake}" if notify else f", {_DUE_NOW} AS due"
    return f"""
WITH ins AS (
    INSERT INTO job ({_JOB_INSERT_COLUMNS})
    VALUES ($1, $2, $3::text::jsonb, $4,
            coalesce($5, now() + make_interval(secs => coalesce($10::float8, 0))), $6, $7, $8,
            $9)
    ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {returning}
), {_ready_one("ins")}
SELECT ins.*{tail} FROM ins
"""


ENQUEUE = _enqueue_one("id, queue, priority, run_at, owner, kind")

# A job with a `unique_key`: ON CONFLICT without a target, so the per-owner idempotency
# index and the active-unique index (migration 0012) both turn a taken key into a no-op; the
# caller then finds which job holds it (FIND_JOB_BY_KEY, FIND_ACTIVE_BY_UNIQUE_KEY).
ENQUEUE_UNIQUE = f"""
WITH ins AS (
    INSERT INTO job ({_JOB_INSERT_COLUMNS}, unique_key)
    VALUES ($1, $2, $3::text::jsonb, $4,
            coalesce($5, now() + make_interval(secs => coalesce($10::float8, 0))), $6, $7, $8,
            $9, $11)
    ON CONFLICT DO NOTHING
    RETURNING *
), {_ready_one("ins")}
SELECT ins.*, {_DUE_NOW} AS due,
       CASE WHEN $12 AND {_DUE_NOW} THEN pg_notify('{NOTIFY_CHANNEL}', queue)::text END
           AS notified
FROM ins
"""

FIND_ACTIVE_BY_UNIQUE_KEY = """
SELECT * FROM job
WHERE owner = $1 AND unique_key = $2 AND unique_key IS NOT NULL AND state IN ('queued', 'running')
"""

# depends_on: a job that waits for others. The submission locks its parents first
# (LOCK_PARENTS), so none of them can finish until it commits: a parent's finish then sees
# the dependency rows and releases what waits for it. A job whose parents have all succeeded
# already is queued as any other. FOR NO KEY UPDATE, not FOR SHARE: the submission marks the
# parents `has_dependants`, and two submissions of one chain (two schedulers firing a tick)
# holding shared locks would each wait for the other's.
LOCK_PARENTS = """
SELECT id, state, owner FROM job WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE
"""

ENQUEUE_WAITING = f"""
WITH ins AS (
    INSERT INTO job ({_JOB_INSERT_COLUMNS}, state)
    VALUES ($1, $2, $3::text::jsonb, $4,
            coalesce($5, now() + make_interval(secs => coalesce($10::float8, 0))), $6, $7, $8,
            $9, 'waiting')
    ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), linked AS (
    INSERT INTO job_dependency (job_id, parent_id)
    SELECT ins.id, p FROM ins, unnest($11::bigint[]) AS p
), marked AS (
    UPDATE job SET has_dependants = true
    WHERE id = ANY($11::bigint[]) AND NOT has_dependants AND EXISTS (SELECT 1 FROM ins)
)
SELECT * FROM ins
"""
"""$1–$10 as ENQUEUE; $11 the parents not yet succeeded."""

# Releasing waiting jobs: their rows are locked first (LOCK_WAITING, a statement of its own),
# then DECIDE_WAITING reads their parents with a snapshot taken after the lock, so two
# decisions about one child take turns and the second finds it decided. Nothing is left
# waiting when two parents finish at once: each release starts after its own parent's finish
# has committed, so at least one of them sees both parents succeeded.
LOCK_WAITING = """
SELECT id FROM job
WHERE state = 'waiting'
  AND (id = ANY($1::bigint[])
       OR id IN (SELECT job_id FROM job_dependency WHERE parent_id = ANY($2::bigint[])))
ORDER BY id
FOR NO KEY UPDATE
"""
"""$1 waiting jobs to decide, $2 parents whose waiting dependants to decide."""

DECIDE_WAITING = f"""
WITH target AS MATERIALIZED (
    SELECT j.id, j.attempt,
           min(p.id) FILTER (WHERE p.state IN ('dead', 'cancelled')) AS failed_parent,
           count(*) FILTER (WHERE p.state IS DISTINCT FROM 'succeeded' AND p.id IS NOT NULL)
               AS pending
    FROM job j
    LEFT JOIN job_dependency d ON d.job_id = j.id
    LEFT JOIN job p ON p.id = d.parent_id
    WHERE j.id = ANY($1::bigint[]) AND j.state = 'waiting'
    GROUP BY j.id, j.attempt
), released AS (
    UPDATE job j SET state = 'queued', run_at = greatest(j.run_at, now())
    FROM target t
    WHERE j.id = t.id AND t.failed_parent IS NULL AND t.pending = 0
    RETURNING j.id, j.queue, j.priority, j.run_at, j.owner, j.kind
), {_ready("released")}, cancelled AS (
    UPDATE job j
    SET state = 'cancelled', finished_at = now(),
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'type', 'ParentFailed', 'at', now(),
            'message', 'job ' || t.failed_parent || ' it depends on ended '
                       || (SELECT state FROM job WHERE id = t.failed_parent)))
    FROM target t
    WHERE j.id = t.id AND t.failed_parent IS NOT NULL
    RETURNING j.id, t.failed_parent
), logged AS (
    INSERT INTO job_event (job_id, at, type, data)
    SELECT id, now(), 'cancelled', jsonb_build_object('by', 'dependency', 'parent', failed_parent)
    FROM cancelled
), woken AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', queue)::text AS n
    FROM (SELECT DISTINCT queue FROM released) q
), changed AS (
    SELECT id FROM released UNION ALL SELECT id FROM cancelled
), {_notify_changes("changed")}
SELECT (SELECT coalesce(array_agg(id), '{{}}') FROM released) AS released,
       (SELECT coalesce(array_agg(id), '{{}}') FROM cancelled) AS cancelled,
       (SELECT count(n) FROM woken) AS woken
WHERE {_SENT}
"""
"""$1 the locked waiting jobs. A parent retention has deleted counts as done (its dependency
row went with it). Returns the released and the cancelled ids: the cancelled ones' own
dependants are decided next."""

WAITING_JOBS = "SELECT id FROM job WHERE state = 'waiting' ORDER BY id LIMIT $1"
"""For the reaper's sweep (job_waiting_idx)."""

# debounce: the still-queued job with the owner's unique key takes the new payload and starts
# $4 seconds from now. Its ready row is locked before the job row, the order a claim takes
# them in, so the two cannot deadlock; a job a claim is taking has lost its ready row (the
# lock waits, then finds it gone) and is left to run: the caller then finds it running.
DEBOUNCE = """
WITH target AS (
    SELECT id FROM job
    WHERE owner = $1 AND unique_key = $2 AND unique_key IS NOT NULL AND state = 'queued'
), ready AS MATERIALIZED (
    SELECT r.id FROM job_ready r JOIN target t ON r.id = t.id FOR UPDATE OF r
), moved AS (
    UPDATE job j
    SET payload = $3::text::jsonb, run_at = now() + make_interval(secs => $4::float8)
    FROM ready WHERE j.id = ready.id AND j.state = 'queued'
    RETURNING j.*
), pushed AS (
    UPDATE job_ready r
    SET run_at = m.run_at, turn = CASE WHEN m.run_at > now() THEN NULL ELSE r.turn END
    FROM moved m WHERE r.id = m.id
)
SELECT * FROM moved
"""

# The same without the NOTIFY, for an insert in autocommit (and answering with the whole
# row: the API's submit needs no second round trip): the store wakes the workers after the
# commit (`jobs.wake.Notices`). A transaction that notifies holds a cluster-wide
# lock from its commit until its WAL is flushed, so notifying inserts commit one at a time:
# measured here, 2,133 single inserts/s with 32 clients against 3,290/s without.
ENQUEUE_QUIETLY = _enqueue_one("id, queue, priority, run_at, owner, kind", notify=False)
ENQUEUE_RETURNING_JOB = _enqueue_one("*")
ENQUEUE_RETURNING_JOB_QUIETLY = _enqueue_one("*", notify=False)

# Wake the listeners of several queues at once, inside the caller's transaction.
NOTIFY_QUEUES = f"""
SELECT count(pg_notify('{NOTIFY_CHANNEL}', q)) FROM unnest($1::text[]) AS q
"""

# `jobs.wake.Notices`' one statement: $1 the channels, $2 the payloads. Its commit does not
# wait for the WAL flush (set_config(…, true) is SET LOCAL, which a transaction pooler lets
# through), so the cluster-wide lock a notifying commit takes is held for microseconds.
NOTIFY_MANY = """
WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true))
SELECT count(pg_notify(c, p)) FROM unflushed, unnest($1::text[], $2::text[]) AS n(c, p)
"""

FIND_BY_KEY = """
SELECT id FROM job WHERE owner = $1 AND idempotency_key = $2
"""

FIND_JOB_BY_KEY = """
SELECT * FROM job WHERE owner = $1 AND idempotency_key = $2
"""


# 5. enqueue_many: one INSERT … SELECT FROM unnest(arrays) for any number of jobs (COPY was
# measured no faster here: the time goes to index and WAL writes, not to parsing). ORDER BY
# ord makes rows insert in input order, and identity values from one session's sequence only
# grow, so the inserted ids sorted ascending follow the input order: that is how each input
# row learns its id without a per-row key. A key taken by an earlier job, or earlier in the
# same batch, is skipped by ON CONFLICT and resolved by the caller. One NOTIFY per queue
# that got a job due now; the quiet form names those queues instead (`due_queues`), for the
# caller to wake after the commit.
def _enqueue_many(notify: bool) -> str:
    due = "(SELECT DISTINCT queue FROM ins WHERE run_at <= now())"
    wake = (
        f"(SELECT count(pg_notify('{NOTIFY_CHANNEL}', queue)) FROM {due} q) AS queues_notified"
        if notify
        else f"(SELECT array_agg(queue) FROM {due} q) AS due_queues"
    )
    return f"""
WITH ins AS (
    INSERT INTO job ({_JOB_INSERT_COLUMNS})
    SELECT queue, kind, payload::jsonb, priority,
           coalesce(run_at, now() + make_interval(secs => coalesce(run_after_s, 0))),
           max_attempts, timeout_s, idempotency_key, owner
    FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::timestamptz[],
                $6::integer[], $7::integer[], $8::text[], $9::text[], $10::float8[])
         WITH ORDINALITY AS t({_JOB_INSERT_COLUMNS}, run_after_s, ord)
    ORDER BY ord
    ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, queue, priority, run_at, owner, kind, idempotency_key
), {_ready("ins")}
SELECT (SELECT array_agg(id ORDER BY id) FROM ins) AS ids,
       (SELECT array_agg(id ORDER BY id) FILTER (WHERE idempotency_key IS NOT NULL) FROM ins)
           AS keyed_ids,
       (SELECT array_agg(owner ORDER BY id) FILTER (WHERE idempotency_key IS NOT NULL) FROM ins)
           AS key_owners,
       (SELECT array_agg(idempotency_key ORDER BY id) FILTER (WHERE idempotency_key IS NOT NULL)
        FROM ins) AS keys,
       {wake}
"""


ENQUEUE_MANY = _enqueue_many(notify=True)
ENQUEUE_MANY_QUIETLY = _enqueue_many(notify=False)

FIND_BY_KEYS = """
SELECT k.owner, k.key, j.id
FROM unnest($1::text[], $2::text[]) AS k(owner, key)
JOIN job j ON j.owner = k.owner AND j.idempotency_key = k.key
"""


# 1. claim. Claims read `job_ready` (one narrow row per queued job), not `job`: a dead entry
# in a claim index is walked by every later claim until vacuum removes it, and while anything
# holds back the vacuum horizon nothing can; `job_ready`'s halves are emptied with TRUNCATE
# (`ROTATE_*` below), which drops them whatever any snapshot holds.
# - Each half is read in claim order from its own indexes and locked with SKIP LOCKED, so
#   many claimers run at once without waiting on each other; `queue = $1` (one queue per
#   statement) lets the index hand rows over in order, so the LIMIT stops the scan early.
#   The halves are named, not read through the partitioned parent: a delete joined to the
#   parent was planned as a hash join over every row of both halves.
# - Claim order is priority, then turn (fair share between owners: see `_ready`). Jobs that
#   were due later when they became queued (a delay, a backoff, a snooze) have no turn and
#   are read from their own index in start order; once due they go first at their priority,
#   as a job just arriving would go near the head.
# - `picked` merges the four reads (at most $2 in all) and only those are deleted, by ctid;
#   rows locked but not picked are let go at commit. The jobs are joined to `picked`, not to
#   the deletes' results (the same rows: they are locked): a job row updated concurrently is
#   re-checked by EvalPlanQual, which cannot re-read a DELETE's output.
# - The job row is the truth: a ready row whose job is no longer queued (cancelled while
#   queued, which leaves its ready row behind) is deleted and claims nothing.
# - Lane 0 holds every kind nobody limits; a limited kind's rows have its lane (migration
#   0016, CLAIM_LANE). A row can reach lane 0 for a kind limited meanwhile (its enqueue read
#   kind_control before the limit's commit): the claim leaves such a job queued and puts
#   its row in its kind's lane instead (`rerouted`). While no kind is limited that costs one
#   probe of an empty table.
# - Rows come back in claim order, so a worker starts its jobs in that order.
# - A claim sends no notification: the store tells `jobs.wake.Notices` after the commit
#   (see there why a notifying commit is a slow one).
def _claim_half(half: int, guard: str, limit: str, clock: str, lane: str, lock: str) -> str:
    columns = f"{half} AS half, ctid AS tid, id, queue, priority, run_at, owner, turn"
    where = f"queue = $1 AND lane = {lane}"
    return f"""turn_{half} AS MATERIALIZED (
    SELECT {columns}, false AS later, turn AS place FROM job_ready_{half}
    WHERE {where} AND turn IS NOT NULL AND run_at <= {clock}{guard}
    ORDER BY priority DESC, turn, id
    LIMIT {limit}{lock}
), later_{half} AS MATERIALIZED (
    SELECT {columns}, true AS later, run_at AS place FROM job_ready_{half}
    WHERE {where} AND turn IS NULL AND run_at <= {clock}{guard}
    ORDER BY priority DESC, run_at, id
    LIMIT {limit}{lock}
)"""


_CLAIM_ORDER = "priority DESC, later DESC, place, id"
_READS = " UNION ALL ".join(
    f"SELECT * FROM {read}_{h}" for h in READY_HALVES for read in ("turn", "later")
)
_PICK_IN_ORDER = f"""
    {_READS}
    ORDER BY {_CLAIM_ORDER}
    LIMIT {{limit}}
"""

_ANY_KIND_LIMITED = "(SELECT EXISTS (SELECT 1 FROM kind_control))"
_IN_LANE_0 = (
    f"(NOT {_ANY_KIND_LIMITED} OR NOT EXISTS (SELECT 1 FROM kind_control c WHERE c.kind = j.kind))"
)
_REROUTED = f""", rerouted AS (
    INSERT INTO job_ready (id, queue, priority, run_at, owner, turn, lane, generation)
    SELECT t.id, t.queue, t.priority, t.run_at, t.owner, t.turn, c.lane, {CURRENT_HALF}
    FROM picked t
    JOIN job j ON j.id = t.id
    JOIN kind_control c ON c.kind = j.kind
    WHERE {_ANY_KIND_LIMITED} AND j.state = 'queued'
      AND t.id <> ALL (ARRAY(SELECT id FROM claimed))
)"""


def _take_half(half: int) -> str:
    return f"""taken_{half} AS (
    DELETE FROM job_ready_{half}
    WHERE ctid = ANY (ARRAY(SELECT tid FROM picked WHERE half = {half}))
)"""


def _claim(
    guard: str = "",
    limit: str = "$2",
    first: str = "",
    clock: str = "coalesce($5, now())",
    lane: str = "0",
    scan: str | None = None,
    pick: str = _PICK_IN_ORDER,
    middle: str = "",
    picked_also: str = "",
    after: str = "",
) -> str:
    # A lane's claims take turns under its kind's lock: no row lock needed to read its rows
    # (the window of a per-owner limit would lock a thousand rows a claim).
    lock = "\n    FOR UPDATE SKIP LOCKED" if lane == "0" else ""
    halves = ", ".join(
        _claim_half(h, guard, scan or limit, clock, lane, lock) for h in READY_HALVES
    )
    lane_0 = lane == "0"
    return f"""
WITH {first}{halves}, {middle}picked AS MATERIALIZED ({pick.format(limit=limit)}
), {", ".join(_take_half(h) for h in READY_HALVES)}, claimed AS (
    UPDATE job j
    SET state = 'running',
        attempt = j.attempt + 1,
        lease_owner = $3,
        lease_expires_at = {clock} + make_interval(secs => $4),
        started_at = {clock},
        progress = 0,
        progress_message = NULL
    FROM picked t
    WHERE j.id = t.id AND (j.state = 'queued') IS TRUE AND j.run_at <= {clock}
      {f"AND {_IN_LANE_0}" if lane_0 else ""}
    RETURNING {", ".join("j." + c for c in CLAIMED_COLUMNS.split(", "))},
              t.later, t.place{picked_also}
){_REROUTED if lane_0 else ""}{after}
SELECT {CLAIMED_COLUMNS} FROM claimed ORDER BY {_CLAIM_ORDER}
"""


CONTROLLED = "(paused OR concurrency IS NOT NULL)"
CLAIM = _claim(
    guard=f"\n      AND NOT EXISTS (SELECT 1 FROM queue_control WHERE queue = $1 AND {CONTROLLED})"
)
"""A queue nobody controls. The guard is one probe of queue_control's primary key, evaluated
once: a paused or limited queue claims nothing here, and the store, finding the claim empty,
asks QUEUE_CONTROL and takes the controlled path below."""

QUEUE_CONTROL = f"SELECT paused, concurrency FROM queue_control WHERE queue = $1 AND {CONTROLLED}"

# A controlled queue is claimed in a transaction that first takes its queue_control row's
# lock (LOCK_QUEUE_CONTROL, a statement of its own), then runs CLAIM_UNDER_LIMIT, whose
# snapshot starts after the lock was granted: it counts every job another claim committed
# before releasing the lock, so claims from every worker take turns and the limit holds
# exactly. Counting one statement with the lock inside would not: a statement's snapshot is
# taken before it waits for a lock, and would miss the claims it waited on. Running jobs
# whose worker died still count until the reaper requeues them at lease expiry: the slot
# heals then, never earlier. A job a worker holds in its buffer counts too: it is running
# as far as the queue knows. $6 is the limit (NULL: paused only, which claims nothing).
LOCK_QUEUE_CONTROL = QUEUE_CONTROL + " FOR UPDATE"

# A claim of several queues and lanes takes all its control locks up front, in one order for
# every claim: the controlled queues among $1 by name, then the kinds $2 by name (the Append
# reads its first branch to the end before the second), so two claims wait for each other
# and never deadlock. The locks are held until commit; each claim statement after this one
# takes its snapshot once they are all granted.
LOCK_CONTROLS = f"""
WITH queues AS MATERIALIZED (
    SELECT queue, paused, concurrency FROM queue_control
    WHERE queue = ANY ($1::text[]) AND {CONTROLLED}
    ORDER BY queue FOR UPDATE
), kinds AS MATERIALIZED (
    SELECT kind, concurrency, owner_concurrency, rate_allowed, rate_period_s, rate_partition
    FROM kind_control WHERE kind = ANY ($2::text[])
    ORDER BY kind FOR UPDATE
)
SELECT true AS is_queue, queue AS name, paused, concurrency, NULL::integer AS owner_concurrency,
       NULL::integer AS rate_allowed, NULL::float8 AS rate_period_s, NULL::text AS rate_partition
FROM queues
UNION ALL
SELECT false, kind, NULL, concurrency, owner_concurrency, rate_allowed, rate_period_s,
       rate_partition
FROM kinds
"""

# An operator's change of a queue's control: a field passed as NULL keeps its value ($4 says
# whether $3, the limit, was given: NULL is also "no limit"). One statement, so two changes
# at once (a pause and a limit) both hold. The queue's workers are woken: a resume or a
# higher limit starts jobs at once.
SET_QUEUE_CONTROL = f"""
WITH changed AS (
    INSERT INTO queue_control AS c (queue, paused, concurrency, updated_by)
    VALUES ($1, coalesce($2, false), CASE WHEN $4 THEN $3::integer END, $5)
    ON CONFLICT (queue) DO UPDATE
    SET paused = coalesce($2, c.paused),
        concurrency = CASE WHEN $4 THEN $3::integer ELSE c.concurrency END,
        updated_at = now(), updated_by = $5
    RETURNING queue, paused, concurrency, updated_at, updated_by
)
SELECT changed.*, pg_notify('{NOTIFY_CHANNEL}', queue)::text AS woken FROM changed
"""

QUEUE_CONTROLS = """
SELECT queue, paused, concurrency, updated_at, updated_by FROM queue_control ORDER BY queue
"""

# A kind's limits (migration 0016) and rate (0017): as SET_QUEUE_CONTROL, a field not given
# keeps its value ($3, $5 and $7 say whether the limits $2 and $4 and the rate $8-$10 were
# given: NULL is also "no limit"). The first control of a kind gives it its lane; ROUTE_KIND
# then moves its ready rows there.
SET_KIND_CONTROL = """
INSERT INTO kind_control AS c (
    kind, concurrency, owner_concurrency, rate_allowed, rate_period_s, rate_partition, updated_by
)
VALUES ($1, CASE WHEN $3 THEN $2::integer END, CASE WHEN $5 THEN $4::integer END,
        CASE WHEN $7 THEN $8::integer END, CASE WHEN $7 THEN $9::float8 END,
        CASE WHEN $7 THEN $10::text END, $6)
ON CONFLICT (kind) DO UPDATE
SET concurrency = CASE WHEN $3 THEN $2::integer ELSE c.concurrency END,
    owner_concurrency = CASE WHEN $5 THEN $4::integer ELSE c.owner_concurrency END,
    rate_allowed = CASE WHEN $7 THEN $8::integer ELSE c.rate_allowed END,
    rate_period_s = CASE WHEN $7 THEN $9::float8 ELSE c.rate_period_s END,
    rate_partition = CASE WHEN $7 THEN $10::text ELSE c.rate_partition END,
    updated_at = now(), updated_by = $6
RETURNING kind, lane, concurrency, owner_concurrency, rate_allowed, rate_period_s,
          rate_partition, updated_at, updated_by
"""

KIND_CONTROLS = """
SELECT kind, lane, concurrency, owner_concurrency, rate_allowed, rate_period_s, rate_partition,
       updated_at, updated_by
FROM kind_control ORDER BY kind
"""

# A kind's ready rows into its lane ($2), with the queues they are in, to wake their
# workers. Rows being claimed are waited for (and then gone); a row readied meanwhile into
# lane 0 is rerouted by the claim that meets it (CLAIM).
ROUTE_KIND = """
WITH routed AS (
    UPDATE job_ready r SET lane = $2
    FROM job j
    WHERE r.lane = 0 AND j.id = r.id AND j.kind = $1
    RETURNING r.queue
)
SELECT count(*) AS routed, coalesce(array_agg(DISTINCT queue), '{}') AS queues FROM routed
"""

# Fair-share weights (migration 0015): an owner's turns are one quantum over its weight
# apart, so at weight 2 it starts twice as many jobs as an owner at 1 while both have jobs
# waiting. Read when a job becomes ready, so a change applies to jobs readied after it.
SET_SHARE = """
INSERT INTO owner_share AS s (owner, weight, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (owner) DO UPDATE SET weight = $2, updated_at = now(), updated_by = $3
RETURNING owner, weight, updated_at, updated_by
"""
CLEAR_SHARE = "DELETE FROM owner_share WHERE owner = $1 RETURNING owner"
SHARES = "SELECT owner, weight, updated_at, updated_by FROM owner_share ORDER BY owner"

_LIMITED_CLOCK = "coalesce($5, statement_timestamp())"
_ANY_DUE_IN_LANE_0 = " OR ".join(
    f"EXISTS (SELECT 1 FROM job_ready_{h} WHERE queue = $1 AND lane = 0 AND turn IS {t}NULL"
    f" AND run_at <= {_LIMITED_CLOCK})"
    for h in READY_HALVES
    for t in ("NOT ", "")
)
CLAIM_UNDER_LIMIT = _claim(
    # the running jobs are counted only if a job is due: the lane-0 claim of a queue whose
    # jobs are all in limited kinds' lanes finds nothing, and cheaply
    first=f"""room AS MATERIALIZED (
    SELECT CASE WHEN {_ANY_DUE_IN_LANE_0} THEN (
        SELECT greatest(0, least($2, $6::integer - count(*))) FROM job
        WHERE state = 'running' AND queue = $1
    ) ELSE 0 END AS n
), """,
    limit="(SELECT n FROM room)",
    # the transaction began before the lock was granted: its now() would date the start
    # before the finish that freed the slot
    clock=_LIMITED_CLOCK,
)

# A limited kind's lane (migration 0016), claimed in a transaction that first takes the
# queues' queue_control row locks, then the kinds' (LOCK_CONTROLS): as CLAIM_UNDER_LIMIT,
# its snapshot then counts every claim committed before, and the room is the least of the
# queue's, the kind's and the caller's.
# A per-owner limit that some owner may reach in this claim, or a rate per partition, reads
# a window of the lane (fair share puts every waiting owner's next jobs near its head) and
# takes, in claim order, the jobs whose owner and partition have room: the window's other
# rows are let go at commit. Jobs beyond the window wait for a later claim. While no owner
# is that close to its limit, the claim reads only the rows it can take (`scan`). The
# running jobs of the queue and kind are read once (`running`) for all three counts. Each
# owner's running count and each partition's starts are looked up in one jsonb object
# (a binary search), not a CTE scanned once per row: with 1,000 owners that scan made a
# claim take 100 ms.
# A rate (migration 0017): at most $11 starts in any $12 seconds, for the kind as a whole
# ($13 NULL), per owner ('owner') or per value of a payload field ('payload.<field>'). Each
# partition's starts within the window are (time, count) pairs in rate_window; the claim
# counts them, and `charged` drops the pairs that left the window and appends its own.
# $6 the queue's limit, $7 the lane, $8 its kind, $9 the kind's limit, $10 per owner,
# $11-$13 the rate (NULL: none).
LANE_WINDOW = 1000
_LANE_CLOCK = _LIMITED_CLOCK
_IN_RATE_WINDOW = f"s.at > {_LANE_CLOCK} - make_interval(secs => $12)"
_PARTITION = """coalesce(CASE
        WHEN $13::text IS NULL THEN ''
        WHEN $13 = 'owner' THEN u.owner
        ELSE (SELECT j.payload ->> substr($13, 9) FROM job j WHERE j.id = u.id)
    END, '')"""
_KEPT_PAIRS = f"""ARRAY(
            SELECT s.{{column}} FROM unnest(b.starts_at, b.starts_n) WITH ORDINALITY s(at, n, i)
            WHERE {_IN_RATE_WINDOW} ORDER BY s.i
        ) || EXCLUDED.starts_{{column}}"""
CLAIM_LANE = _claim(
    first=f"""running AS MATERIALIZED (
    SELECT queue = $1 AS in_queue, kind = $8 AS of_kind, owner FROM job
    WHERE state = 'running' AND (queue = $1 OR kind = $8)
), owners_running AS MATERIALIZED (
    SELECT coalesce(jsonb_object_agg(owner, n), '{{}}') AS by_owner, coalesce(max(n), 0) AS most
    FROM (
        SELECT owner, count(*) AS n FROM running
        WHERE $10::integer IS NOT NULL AND of_kind
        GROUP BY owner
    ) o
), room AS MATERIALIZED (
    SELECT greatest(0, least(
        $2,
        coalesce($6::integer - (SELECT count(*) FROM running WHERE in_queue), $2),
        coalesce($9::integer - (SELECT count(*) FROM running WHERE of_kind), $2),
        coalesce($11::integer - CASE WHEN $13::text IS NULL THEN (
            SELECT coalesce(sum(s.n), 0)
            FROM rate_window b, unnest(b.starts_at, b.starts_n) s(at, n)
            WHERE b.kind = $8 AND b.part = '' AND {_IN_RATE_WINDOW}
        ) END, $2)
    ))::integer AS n
), scan AS MATERIALIZED (
    SELECT CASE
        WHEN $13::text IS NULL AND ($10::integer IS NULL
             OR (SELECT o.most FROM owners_running o) + r.n <= $10::integer)
        THEN r.n ELSE {LANE_WINDOW} END AS n
    FROM room r
), """,
    limit="(SELECT n FROM room)",
    scan="(SELECT n FROM scan)",
    clock=_LANE_CLOCK,
    lane="$7::smallint",
    middle=f"""lane_rows AS MATERIALIZED (
    SELECT u.*, {_PARTITION} AS part FROM ({_READS}) u
), rate_used AS MATERIALIZED (
    SELECT coalesce(jsonb_object_agg(part, n), '{{}}') AS by_part FROM (
        SELECT b.part, sum(s.n) AS n
        FROM rate_window b, unnest(b.starts_at, b.starts_n) s(at, n)
        WHERE $13::text IS NOT NULL AND b.kind = $8
          AND b.part = ANY (ARRAY(SELECT DISTINCT part FROM lane_rows)) AND {_IN_RATE_WINDOW}
        GROUP BY b.part
    ) p
), """,
    pick=f"""
    SELECT * FROM (
        SELECT r.*, row_number() OVER (PARTITION BY r.owner ORDER BY {_CLAIM_ORDER}) AS nth
        FROM (
            SELECT w.*,
                   row_number() OVER (PARTITION BY w.part ORDER BY {_CLAIM_ORDER}) AS nth_part
            FROM lane_rows w
        ) r
        WHERE $13::text IS NULL
           OR r.nth_part + coalesce(((SELECT p.by_part FROM rate_used p) ->> r.part)::integer, 0)
              <= $11::integer
    ) r
    WHERE $10::integer IS NULL
       OR r.nth + coalesce(((SELECT o.by_owner FROM owners_running o) ->> r.owner)::integer, 0)
          <= $10::integer
    ORDER BY {_CLAIM_ORDER}
    LIMIT {{limit}}
""",
    picked_also=", t.part",
    after=f""", charged AS (
    INSERT INTO rate_window AS b (kind, part, starts_at, starts_n)
    SELECT $8, c.part, ARRAY[{_LANE_CLOCK}], ARRAY[count(*)::integer]
    FROM claimed c WHERE $11::integer IS NOT NULL
    GROUP BY c.part
    ON CONFLICT (kind, part) DO UPDATE
    SET starts_at = {_KEPT_PAIRS.format(column="at")},
        starts_n = {_KEPT_PAIRS.format(column="n")}
)""",
)

# When a partition of a rate-limited kind ($1, $2 starts in $3 seconds) that is full frees
# its next start, in seconds from now ($4: the clock, NULL: now). Read after a claim held
# back by its rate, so a worker looks again then instead of at its next poll.
RATE_OPENS_IN = """
SELECT extract(epoch FROM min(o.opens) - coalesce($4, statement_timestamp()))::float8 AS s
FROM rate_window b, LATERAL (
    SELECT min(s.at) + make_interval(secs => $3) AS opens, sum(s.n) AS used
    FROM unnest(b.starts_at, b.starts_n) s(at, n)
    WHERE s.at > coalesce($4, statement_timestamp()) - make_interval(secs => $3)
) o
WHERE b.kind = $1 AND o.used >= $2
"""

# The plans of the claim, finish and heartbeat, fixed: each half of `job_ready` by its index in
# claim order, its rows deleted by tid, jobs by primary key. Left to its estimates the planner
# went wrong two ways. A half just emptied by TRUNCATE has no row count and often no column
# statistics: it guessed two matching rows, then read the whole half and sorted it on every
# claim (a 20,000-job burst was claimed at a tenth of the rate). And for a finish of 230 ids
# it chose a hash join over a read of all of `job` (44 ms a batch where it takes 3). Every
# plan these settings rule out reads a whole half, or a whole index or table of `job`. (Not
# `enable_sort`: with it off, the claim took 500 ms where it takes 4.) The store sets them on
# the connections it keeps for these statements, or SET LOCAL inside a transaction.
# With the plans fixed, the parameters cannot change them, so these statements are planned
# once per connection (generic plans) instead of on every call as every other statement is
# (jobs.db.SERVER_SETTINGS): measured on 2026-12-03, a claim of one job took 1.19 ms instead
# of 2.41 (p50, 400 claims, no flush), a finish 1.07 ms instead of 1.27.
_FIXED_PLANS = (
    "SET enable_seqscan = off; SET enable_bitmapscan = off; "
    "SET enable_hashjoin = off; SET enable_mergejoin = off"
)
HOT_PLANNER = _FIXED_PLANS + "; SET plan_cache_mode = force_generic_plan"
HOT_PLANNER_LOCAL = HOT_PLANNER.replace("SET ", "SET LOCAL ")
# Behind a transaction pooler no connection carries jobs.db.SERVER_SETTINGS' `jit = off`,
# and these plans' disabled-scan costs are far past jit_above_cost. No generic plans there:
# its statements are unnamed (jobs.db.create_pool), planned afresh on every call anyway.
HOT_PLANNER_POOLED = _FIXED_PLANS.replace("SET ", "SET LOCAL ") + "; SET LOCAL jit = off"

# A claim under control locks (of several units, or of one controlled queue) plans its
# statements once per connection (generic plans) where every other statement is planned with
# its parameters (jobs.db.SERVER_SETTINGS): its planning is time every other worker's claim
# waits, and the claim statements' plans are fixed by HOT_PLANNER whatever the parameters.
# Measured on the flow-control drain (two workers, a limited queue and kind): planning was
# 1.3 ms of each lane claim's 7, and the drain went from 6,539 to 9,664 jobs/s.
GENERIC_PLANS_LOCAL = "SET LOCAL plan_cache_mode = force_generic_plan"

CUSTOM_PLANS_LOCAL = "SET LOCAL plan_cache_mode = force_custom_plan"
"""For listings: a plan for these values, never a generic one. A generic plan cannot know that
an owner has no dead jobs, and walked the whole primary key looking for them (300 ms at
1,000,000 jobs, against 0.1 ms through the owner's index)."""
HOT_PLANNER_RESET = (
    "RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_hashjoin; RESET enable_mergejoin; "
    "RESET plan_cache_mode"
)

# 2. extend_leases: one statement per heartbeat for everything a worker holds. Each lease is
# matched on (id, attempt, owner) and reported back as (id, attempt), so a job that was
# reaped and claimed again — even by this same worker — is lost for the old attempt and held
# for the new one. Rows are locked in id order first (here and in FINISH_MANY): the heartbeat
# and the completer touch overlapping rows, and locking them in join order could deadlock.
# The cancel flag rides along so the worker learns of a cancel request without a query.
# The fence is `lease_owner` alone (a lease is held iff the job is running: CHECK
# job_lease_iff_running) and not also `state = 'running'`: that condition matches the partial
# job_lease_idx, and the planner then read all of that index (every running job, and every
# dead entry a held vacuum horizon keeps) instead of looking the ids up in the primary key.
EXTEND_LEASES = """
WITH held AS (
    SELECT * FROM unnest($1::bigint[], $2::integer[]) AS h(id, attempt)
), locked AS MATERIALIZED (
    SELECT j.id FROM job j JOIN held h ON j.id = h.id AND j.attempt = h.attempt
    WHERE j.lease_owner = $5
    ORDER BY j.id
    FOR NO KEY UPDATE OF j
)
UPDATE job j
SET lease_expires_at = coalesce($4, now()) + make_interval(secs => $3)
FROM locked l
WHERE j.id = l.id
RETURNING j.id, j.attempt, j.cancel_requested_at IS NOT NULL AS cancel_requested
"""

# 3. finish_many: a batch of decided changes in one statement. Every row is fenced by
# state = 'running' AND lease_owner AND attempt: if the lease was lost (reaped, maybe running
# elsewhere) the row does not match, nothing is written, and it is missing from the result.
# Rows are locked in id order before they are written (see EXTEND_LEASES).
# One rule is applied here rather than in `decide`, because only the locked row knows it: a
# cancel request made after the worker's last heartbeat wins over a requeue (retry, snooze,
# release, expired lease), so a job someone cancelled never runs again.
# Events for the non-happy paths are inserted by the same statement: a change and its event
# land together or not at all; so is the `job_ready` row of a job sent back to the queue.
# (The fence names no state: see EXTEND_LEASES.)
FINISH_MANY = f"""
WITH outcome AS (
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::text[],
                         $5::float8[], $6::text[], $7::text[], $8::integer[],
                         $9::text[], $10::text[])
        AS o(id, attempt, lease_owner, state, run_after_s, result, error, extra_attempts,
             event, event_data)
), target AS MATERIALIZED (
    SELECT o.*, (o.state = 'queued' AND j.cancel_requested_at IS NOT NULL) AS cancel_wins
    FROM job j
    JOIN outcome o ON j.id = o.id AND j.attempt = o.attempt AND j.lease_owner = o.lease_owner
    ORDER BY j.id
    FOR NO KEY UPDATE OF j
), decided AS (
    SELECT id, attempt, lease_owner, result, error, extra_attempts,
           CASE WHEN cancel_wins THEN 'cancelled' ELSE state END AS state,
           CASE WHEN cancel_wins THEN NULL ELSE run_after_s END AS run_after_s,
           CASE WHEN cancel_wins THEN 'cancelled' ELSE event END AS event,
           CASE WHEN cancel_wins
                THEN jsonb_build_object('attempt', attempt, 'reason', 'cancel requested',
                                        'instead_of', event)::text
                ELSE event_data END AS event_data
    FROM target
), applied AS (
    UPDATE job j
    SET state = d.state,
        run_at = CASE WHEN d.run_after_s IS NULL THEN j.run_at
                      ELSE coalesce($11, now()) + make_interval(secs => d.run_after_s) END,
        result = CASE WHEN d.state = 'succeeded' THEN d.result::jsonb ELSE j.result END,
        errors = CASE WHEN d.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(d.error::jsonb) END,
        max_attempts = j.max_attempts + d.extra_attempts,
        progress = CASE WHEN d.state = 'succeeded' THEN 100 ELSE j.progress END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN d.state IN ('succeeded', 'cancelled', 'dead')
                           THEN coalesce($11, now()) END
    FROM decided d
    WHERE j.id = d.id
    RETURNING j.id, j.attempt, d.lease_owner, j.state, d.event, d.event_data, d.run_after_s,
              j.run_at, j.queue, j.priority, j.owner, j.kind, j.has_dependants
), {_ready("applied", "state = 'queued'")}, logged AS (
    INSERT INTO job_event (job_id, at, type, data)
    SELECT id, coalesce($11, now()), event,
           CASE WHEN run_after_s IS NULL THEN event_data::jsonb
                ELSE event_data::jsonb || jsonb_build_object('run_at', run_at) END
    FROM applied WHERE event IS NOT NULL
), {_notify_changes("applied")}
SELECT id, attempt, lease_owner, state, has_dependants FROM applied WHERE {_SENT}
"""

# 3. finish_many's common case, a batch of successes of one worker: the same fence, three
# arrays instead of ten, and none of the rest (the cancel rule concerns requeues only, and
# the happy path writes no event row). Measured on two workers draining no-op jobs, the
# general statement's arguments alone were a tenth of a worker's CPU. It sends no
# notification: the store tells `jobs.wake.Notices` after the commit (FINISH_MANY, which a
# reap runs inside its own transaction, still notifies in the statement).
SUCCEED_MANY = """
WITH outcome AS (
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[]) AS o(id, attempt, result)
), target AS MATERIALIZED (
    SELECT o.id, o.result
    FROM job j JOIN outcome o ON j.id = o.id AND j.attempt = o.attempt
    WHERE j.lease_owner = $4
    ORDER BY j.id
    FOR NO KEY UPDATE OF j
), applied AS (
    UPDATE job j
    SET state = 'succeeded',
        result = t.result::jsonb,
        progress = 100,
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = coalesce($5, now())
    FROM target t
    WHERE j.id = t.id
    RETURNING j.id, j.attempt, j.has_dependants
)
SELECT id, attempt, has_dependants FROM applied
"""

# 4. reap, step one (inside a transaction with FINISH_MANY as step two): lock expired leases.
# SKIP LOCKED keeps concurrent reapers (every worker runs one) from queueing on each other;
# job_lease_idx keeps the scan to running rows only. The decision per row is the same pure
# function the completer uses, and the fenced FINISH_MANY applies it under these locks.
# $3 bounds the pass to leases that expired in the last $3 seconds (NULL: all of them): the
# index also holds an entry for every finished job's last lease, and a pass from the start
# would walk all those a held vacuum horizon keeps (`worker.reaper` says when a bounded pass
# is enough).
LOCK_EXPIRED = """
SELECT id, queue, kind, attempt, max_attempts, lease_owner, lease_expires_at
FROM job
WHERE state = 'running' AND lease_expires_at < coalesce($1, now())
  AND lease_expires_at >= CASE WHEN $3::float8 IS NULL THEN '-infinity'::timestamptz
                               ELSE coalesce($1, now()) - make_interval(secs => $3) END
ORDER BY lease_expires_at
LIMIT $2
FOR NO KEY UPDATE SKIP LOCKED
"""

# cancel: a queued job is cancelled at once; a running one gets cancel_requested_at and its
# worker (which sees the flag on its next heartbeat) stops it. The row lock in `target`
# orders us against a concurrent claim: whichever wins, the other sees the new state. $1 is
# one id or many (a dashboard's selection), locked in id order so two bulk cancels cannot
# deadlock; a row per job found, none for an id that is not the caller's.
CANCEL = f"""
WITH target AS MATERIALIZED (
    SELECT id, state, cancel_requested_at, has_dependants FROM job
    WHERE id = ANY($1::bigint[]) AND ($2::text IS NULL OR owner = $2)
    ORDER BY id
    FOR NO KEY UPDATE
), changed AS (
    UPDATE job j
    SET state = CASE WHEN t.state IN ('queued', 'waiting') THEN 'cancelled' ELSE j.state END,
        finished_at = CASE WHEN t.state IN ('queued', 'waiting') THEN coalesce($4, now()) END,
        cancel_requested_at = coalesce(j.cancel_requested_at, coalesce($4, now()))
    FROM target t
    WHERE j.id = t.id
      AND (t.state IN ('queued', 'waiting')
           OR (t.state = 'running' AND t.cancel_requested_at IS NULL))
    RETURNING j.id, j.state
), logged AS (
    INSERT INTO job_event (job_id, at, type, data)
    SELECT id, coalesce($4, now()),
           CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
           jsonb_build_object('by', $3::text)
    FROM changed
), {_notify_changes("changed")}
SELECT t.id, t.state AS previous, coalesce(c.state, t.state) AS state, t.has_dependants
FROM target t LEFT JOIN changed c USING (id)
WHERE {_SENT}
ORDER BY t.id
"""

# retry / retry_many: dead or cancelled jobs back to queued with a fresh budget of attempts.
# The attempt counter is not reset — it is the lease's fencing token — so the budget is
# expressed as max_attempts = attempt + budget. `{where}` is built from fixed fragments with
# every value bound as a parameter ($1 = budget, $2 = who, $3 = now; filters from $4).
RETRY = f"""
WITH changed AS (
    UPDATE job
    SET state = 'queued',
        run_at = coalesce($3, now()),
        max_attempts = attempt + $1,
        finished_at = NULL,
        cancel_requested_at = NULL,
        progress = 0,
        progress_message = NULL,
        result = NULL
    WHERE state IN ('dead', 'cancelled') AND {{where}}
    RETURNING id, queue, priority, run_at, owner, kind
), {_ready("changed")}, logged AS (
    INSERT INTO job_event (job_id, at, type, data)
    SELECT id, coalesce($3, now()), 'retried', jsonb_build_object('by', $2::text, 'budget', $1)
    FROM changed
), notified AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', queue)::text AS n
    FROM (SELECT DISTINCT queue FROM changed) q
), {_notify_changes("changed")}
SELECT (SELECT array_agg(id) FROM changed) AS ids, (SELECT count(n) FROM notified) AS queues,
       (SELECT count(n) FROM changes_notified) AS changes
"""

# report_progress: fenced like a finish. The row always takes the latest value (cheap: the
# columns are unindexed, so with fillfactor < 100 the update is HOT). Events are coalesced:
# within progress_event_interval of the same attempt's last progress event, that event is
# overwritten instead of a new row added, so a handler reporting 1,000 times a second adds
# one row a second at most and the latest report is never lost.
REPORT_PROGRESS = f"""
WITH updated AS (
    UPDATE job SET progress = $4, progress_message = $5
    WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempt = $3
    RETURNING id
), recent AS (
    SELECT e.id FROM job_event e
    WHERE e.job_id = $1 AND e.type = 'progress' AND (e.data ->> 'attempt')::integer = $3
      AND e.at > coalesce($7, now()) - make_interval(secs => $6)
    ORDER BY e.at DESC LIMIT 1
), payload AS (
    SELECT jsonb_build_object('progress', $4::integer, 'message', $5::text, 'attempt', $3::integer)
           AS data
), overwritten AS (
    UPDATE job_event e SET data = p.data
    FROM recent r, payload p
    WHERE e.id = r.id AND EXISTS (SELECT 1 FROM updated)
    RETURNING e.id
), added AS (
    INSERT INTO job_event (job_id, at, type, data)
    SELECT u.id, coalesce($7, now()), 'progress', p.data
    FROM updated u, payload p
    WHERE NOT EXISTS (SELECT 1 FROM recent)
    RETURNING id
), {_notify_changes("updated")}
SELECT (SELECT count(*) FROM updated) AS applied,
       (SELECT count(*) FROM added) AS added,
       (SELECT count(n) FROM changes_notified) AS changes
"""

# 6. rotate_ready: keep `job_ready`'s dead rows bounded (see CLAIM). New rows go to the
# current half; the other one only drains. Once the other has no rows left (or its last rows
# are moved into the current half), it is emptied with TRUNCATE and becomes current. What to
# do is decided by `jobs.ready.rotation` from these figures: the halves' sizes on disk (no
# scan, no snapshot) and a bounded count of the other half's rows.
READY_STATE = """
SELECT last_value::integer AS current,
       pg_relation_size('job_ready_0') AS bytes_0,
       pg_relation_size('job_ready_1') AS bytes_1,
       (SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8
        FROM pg_stat_activity
        WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()) AS held_s
FROM job_ready_generation
"""
"""`held_s`: how long the oldest snapshot another session holds has been open, which is how
long the vacuum horizon has been held back (0: not at all). Without that, an index scan marks
the entries of rows every snapshot sees as deleted, and later scans skip them cheaply: no
rotation is needed, and moving rows would only compete with the claims."""


def ready_rows(half: int) -> str:
    """How many rows half `half` holds, counted up to $1."""
    return f"SELECT count(*) FROM (SELECT 1 FROM job_ready_{half} LIMIT $1) r"


def move_ready(source: int, target: int) -> str:
    """Up to $1 rows of half `source` moved to half `target`, the last in claim order first
    (the rows claims want next are locked by the move while it runs, and claims skip them),
    with SKIP LOCKED as a claim (a row being claimed meanwhile stays where it is). A row whose
    job is no longer queued is dropped instead."""
    return f"""
WITH moved AS (
    DELETE FROM job_ready_{source}
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM job_ready_{source}
        ORDER BY queue DESC, priority, turn DESC NULLS FIRST, run_at DESC, id DESC
        LIMIT $1
        FOR UPDATE SKIP LOCKED))
    RETURNING id, queue, priority, run_at, owner, turn, lane
), kept AS (
    INSERT INTO job_ready_{target} (id, queue, priority, run_at, owner, turn, lane, generation)
    SELECT m.id, m.queue, m.priority, m.run_at, m.owner, m.turn, m.lane, {target} FROM moved m
    WHERE EXISTS (SELECT 1 FROM job j WHERE j.id = m.id AND j.state = 'queued')
    RETURNING id
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM kept) AS kept
"""


READY_ROTATION_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('conveyor.job_ready'))"
"""One rotation at a time, whoever runs it (every worker tries)."""


def empty_ready(half: int) -> list[str]:
    """In one transaction, after READY_ROTATION_LOCK: wait briefly for the half's lock (a
    claim holds it for a few milliseconds, and claims queue behind a waiting TRUNCATE, so
    the wait is short and a busy half is tried again later), then TRUNCATE it only if it
    is empty under that lock: nothing can be added to it in between."""
    return [
        "SET LOCAL lock_timeout = '20ms'",
        f"LOCK TABLE job_ready_{half} IN ACCESS EXCLUSIVE MODE",
        f"SELECT NOT EXISTS (SELECT 1 FROM job_ready_{half})",
        f"TRUNCATE job_ready_{half}",
    ]


SET_CURRENT_HALF = "SELECT setval('job_ready_generation', $1, true)"

# prune: delete finished jobs of one state older than a cutoff, a bounded batch at a time so
# a large backlog never holds locks or bloats one transaction. job_finished_idx finds them;
# their events go with them (ON DELETE CASCADE on job_event.job_id).
PRUNE = """
WITH doomed AS (
    SELECT id FROM job
    WHERE state = $1 AND finished_at < $2
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM job j USING doomed d WHERE j.id = d.id
"""

# Listings (`jobs.store.JobFilter` builds `{where}` from fixed fragments, every value a
# bound parameter; `{limit}` is the number of the limit's parameter).
LIST_JOBS = """
SELECT {columns} FROM job WHERE {where} ORDER BY id DESC LIMIT ${limit}
"""

# A list's rows without what can be large: no payload or result (never read from TOAST),
# and of the errors only the last, without its traceback.
BRIEF_COLUMNS = """
id, queue, kind, NULL::jsonb AS payload, state, priority, run_at, attempt, max_attempts,
timeout_s, lease_owner, lease_expires_at, progress, progress_message, NULL::jsonb AS result,
CASE WHEN errors = '[]'::jsonb THEN errors
     ELSE jsonb_build_array((errors -> -1) - 'traceback') END AS errors,
idempotency_key, owner, cancel_requested_at, created_at, started_at, finished_at, unique_key
"""

# Where a text search starts and stops: both ends of the primary key, read from its index.
JOB_ID_SPAN = """
SELECT min(id) AS lowest, max(id) AS highest FROM job
"""

# One state's count for the jobs browser, stopped at `${cap}` rows: `count_jobs` unites one
# of these per state, so every count is a bounded index read. A finished state reads
# job_finished_idx in its order (`{order}`): without it the planner chose a scan of `job`
# that stops at the cap, which for a state of 2 % of the rows read half of the table.
COUNT_IN_STATE = """
SELECT '{state}'::text AS state,
       (SELECT count(*) FROM (SELECT 1 FROM job WHERE {where} {order} LIMIT ${cap}) c) AS n
"""
COUNT_FINISHED_ORDER = "AND finished_at IS NOT NULL ORDER BY finished_at DESC"

# An operator's delete of finished jobs, and who did it, in one statement: the jobs' own
# events go with their rows (job_event cascades), so the record is kept in audit_event.
DELETE_JOBS = """
WITH doomed AS (
    SELECT id FROM job
    WHERE id = ANY($1::bigint[]) AND state IN ('succeeded', 'cancelled', 'dead')
    ORDER BY id
    FOR UPDATE
), deleted AS (
    DELETE FROM job j USING doomed d WHERE j.id = d.id RETURNING j.id
), audited AS (
    INSERT INTO audit_event (actor, action, data)
    SELECT $2, 'jobs.deleted',
           jsonb_build_object('ids', jsonb_agg(id ORDER BY id), 'count', count(*))
    FROM deleted
    HAVING count(*) > 0
    RETURNING id
)
SELECT (SELECT array_agg(id ORDER BY id) FROM deleted) AS ids,
       (SELECT count(*) FROM audited) AS audited
"""

STATES_OF = """
SELECT id, state FROM job WHERE id = ANY($1::bigint[]) AND ($2::text IS NULL OR owner = $2)
"""

AUDIT_EVENTS = """
SELECT id, at, actor, action, data FROM audit_event
WHERE ($1::bigint IS NULL OR id < $1)
ORDER BY id DESC
LIMIT $2
"""

GET_JOB = """
SELECT * FROM job WHERE id = $1 AND ($2::text IS NULL OR owner = $2)
"""

JOB_EVENTS = """
SELECT job_id, at, type, data FROM job_event WHERE job_id = $1 ORDER BY at, id
"""

# The `worker` table: one row per live worker process, kept fresh by its heartbeat.
# It says what it is: the Conveyor version it runs and the kinds it runs with their defaults
# (`$7`: `[{"kind", "timeout_s", "cpu_bound"}]`), which only the worker knows. `$8` is the
# jobs it finished that no heartbeat has counted yet (a row pruned during an outage).
REGISTER_WORKER = """
INSERT INTO worker AS w (id, host, pid, queues, concurrency, version, kinds, jobs_done)
VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = now(), version = excluded.version, kinds = excluded.kinds,
    jobs_done = w.jobs_done + excluded.jobs_done
"""

# `$2`: the jobs the worker finished since its last heartbeat.
WORKER_HEARTBEAT = """
UPDATE worker SET heartbeat_at = now(), jobs_done = jobs_done + $2 WHERE id = $1
"""

UNREGISTER_WORKER = """
DELETE FROM worker WHERE id = $1
"""

# A worker that stopped heartbeating (kill -9, lost machine) is removed by any other worker;
# its jobs come back through the reaper when their leases run out.
PRUNE_WORKERS = """
DELETE FROM worker WHERE heartbeat_at < coalesce($2, now()) - make_interval(secs => $1)
"""

# Per-queue figures for operators. Live states are counted exactly (the partial indexes keep
# that cheap); finished jobs only over the last minute (job_finished_idx), never the whole
# history. $1 scopes to one owner (NULL: all).
LIVE_ROWS = """(
    SELECT queue, state, run_at FROM job WHERE state = 'queued' AND {scope}
    UNION ALL
    SELECT queue, state, run_at FROM job WHERE state = 'running' AND {scope}
)"""
"""Queued and running rows, each state from its partial index: `state IN (...)` matches
neither index's predicate, and a planner then scanned the whole of `job`."""

QUEUE_STATS = f"""
WITH live AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'running') AS running,
           min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()) AS oldest_ready
    FROM {LIVE_ROWS.format(scope="($1::text IS NULL OR owner = $1)")} l
    GROUP BY queue
), recent AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'dead') AS dead,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM job
    WHERE state IN ('succeeded', 'dead', 'cancelled')
      AND finished_at > now() - interval '1 minute'
      AND ($1::text IS NULL OR owner = $1)
    GROUP BY queue
)
SELECT coalesce(l.queue, r.queue, c.queue) AS queue,
       coalesce(l.queued, 0) AS queued,
       coalesce(l.running, 0) AS running,
       coalesce(r.succeeded, 0) AS succeeded_last_minute,
       coalesce(r.dead, 0) AS dead_last_minute,
       coalesce(r.cancelled, 0) AS cancelled_last_minute,
       extract(epoch FROM now() - l.oldest_ready)::float8 AS oldest_queued_age_s,
       coalesce(c.paused, false) AS paused,
       c.concurrency
FROM live l FULL JOIN recent r ON r.queue = l.queue
FULL JOIN (SELECT queue, paused, concurrency FROM queue_control) c
       ON c.queue = coalesce(l.queue, r.queue)
WHERE coalesce(l.queue, r.queue) IS NOT NULL OR c.paused OR c.concurrency IS NOT NULL
ORDER BY 1
"""

LIVE_WORKERS = """
SELECT w.id, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.heartbeat_at,
       extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age_s,
       w.version, w.jobs_done, w.kinds,
       (SELECT count(*) FROM job j WHERE j.state = 'running' AND j.lease_owner = w.id)
           AS running
FROM worker w
WHERE $1::text IS NULL OR w.id = $1
ORDER BY w.started_at
"""

# The jobs a worker holds now (running under its lease, started or still in its buffer),
# from the partial index of running jobs: never more than its slots and claim-ahead.
WORKER_JOBS = """
SELECT id, kind, queue, owner, attempt, progress, progress_message, started_at
FROM job
WHERE state = 'running' AND lease_owner = $1
ORDER BY started_at, id
LIMIT $2
"""


def _add_histograms(alias: str) -> str:
    return f"""finished = {alias}.finished + excluded.finished,
    wait_sum_s = {alias}.wait_sum_s + excluded.wait_sum_s,
    wait_buckets = ARRAY(
        SELECT a + b FROM unnest({alias}.wait_buckets, excluded.wait_buckets) AS u(a, b)
    ),
    run_sum_s = {alias}.run_sum_s + excluded.run_sum_s,
    run_buckets = ARRAY(
        SELECT a + b FROM unnest({alias}.run_buckets, excluded.run_buckets) AS u(a, b)
    )"""


def _summed(column: str) -> str:
    """Per-bucket sums of a histogram column, as one array (one `sum` per bucket: adding
    arrays by unnest measured three times slower over a day's rows)."""
    n = len(DURATION_BUCKETS_S) + 1
    return "ARRAY[" + ", ".join(f"sum({column}[{i}])" for i in range(1, n + 1)) + "]::bigint[]"


def window_rows(since: str) -> str:
    """The aggregate rows of a window that starts at the minute `since` (an expression), to
    now: its first, partial hour from job_minute, every hour after it from job_hour. A day
    reads at most 59 + 25 rows per (queue, kind, outcome), exact to the minute."""
    hour = f"date_bin('1 hour', {since}, timestamptz 'epoch')"  # UTC hours, in any TimeZone
    edge = f"({hour} + CASE WHEN {hour} < {since} THEN interval '1 hour' ELSE interval '0' END)"
    columns = "queue, kind, outcome, finished, wait_buckets, run_buckets"
    return f"""(
    SELECT {columns} FROM job_minute WHERE minute >= {since} AND minute < {edge}
    UNION ALL
    SELECT {columns} FROM job_hour WHERE hour >= {edge}
)"""


# The kinds live workers run, each with the defaults its newest worker published and how
# many workers run it; and per kind, jobs finished over the last 24 hours from the
# aggregates (`window_rows`: at most 84 rows per queue, kind and outcome), never from `job`.
# A success rate leaves cancelled jobs out: a cancel is an operator's decision.
KIND_CATALOGUE = f"""
WITH run AS (
    SELECT DISTINCT ON (k.kind) k.kind, k.timeout_s, k.cpu_bound,
           count(*) OVER (PARTITION BY k.kind) AS workers
    FROM worker w,
         jsonb_to_recordset(w.kinds) AS k(kind text, timeout_s float8, cpu_bound boolean)
    WHERE k.kind IS NOT NULL
    ORDER BY k.kind, w.started_at DESC
), done AS (
    SELECT kind,
           sum(finished) FILTER (WHERE outcome = 'succeeded') AS succeeded,
           sum(finished) FILTER (WHERE outcome = 'dead') AS dead,
           sum(finished) FILTER (WHERE outcome = 'cancelled') AS cancelled
    FROM {window_rows("date_trunc('minute', now()) - interval '1439 minutes'")} w
    GROUP BY kind
)
SELECT kind, r.timeout_s, r.cpu_bound, coalesce(r.workers, 0) AS workers,
       coalesce(d.succeeded, 0)::bigint AS succeeded_24h,
       coalesce(d.dead, 0)::bigint AS dead_24h,
       coalesce(d.cancelled, 0)::bigint AS cancelled_24h
FROM run r FULL JOIN done d USING (kind)
ORDER BY kind
"""

# A "running jobs" widget: everything live, plus what finished in the last $2 seconds so the
# widget can show jobs completing. The OR is answered from the partial claim and reaper
# indexes and job_finished_idx (a bitmap OR), not by scanning history.
ACTIVE_JOBS = """
SELECT * FROM job
WHERE ($1::text IS NULL OR owner = $1)
  AND (state IN ('waiting', 'queued', 'running')
       OR (state IN ('succeeded', 'cancelled', 'dead')
           AND finished_at > now() - make_interval(secs => $2)))
ORDER BY id DESC
LIMIT $3
"""

# job_stats: a worker's tally added to the running totals. Rows go in key order, so two
# workers flushing overlapping keys lock them in the same order and cannot deadlock.
# `$6` is every row's bucket counts end to end, `$7` buckets per row.
ADD_STATS = """
INSERT INTO job_stats AS s (queue, kind, outcome, finished, duration_sum_s, duration_buckets)
SELECT t.queue, t.kind, t.outcome, t.finished, t.duration_sum_s,
       ($6::bigint[])[(t.ord - 1) * $7 + 1 : t.ord * $7]
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[])
     WITH ORDINALITY AS t(queue, kind, outcome, finished, duration_sum_s, ord)
ORDER BY t.queue, t.kind, t.outcome
ON CONFLICT (queue, kind, outcome) DO UPDATE
SET finished = s.finished + excluded.finished,
    duration_sum_s = s.duration_sum_s + excluded.duration_sum_s,
    duration_buckets = ARRAY(
        SELECT a + b FROM unnest(s.duration_buckets, excluded.duration_buckets) AS u(a, b)
    ),
    updated_at = now()
"""

JOB_STATS = """
SELECT queue, kind, outcome, finished, duration_sum_s, duration_buckets
FROM job_stats ORDER BY queue, kind, outcome
"""

# job_minute and job_hour: a worker's per-minute tally added to the minutes' rows and to their
# hours', as ADD_STATS does (rows in key order, so overlapping flushes cannot deadlock: every
# flush takes its rows of one table, then the other's, in the same order; histograms added
# element-wise). `$1` is each row's minute in Unix seconds; `$7` and `$9` are every row's wait
# and run bucket counts end to end, `$10` buckets per row.
ADD_MINUTES = f"""
WITH t AS MATERIALIZED (
    SELECT to_timestamp(t.minute) AS minute, t.queue, t.kind, t.outcome, t.finished,
           t.wait_sum_s, ($7::bigint[])[(t.ord - 1) * $10 + 1 : t.ord * $10] AS wait_buckets,
           t.run_sum_s, ($9::bigint[])[(t.ord - 1) * $10 + 1 : t.ord * $10] AS run_buckets
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[],
                $8::float8[])
         WITH ORDINALITY AS t(minute, queue, kind, outcome, finished, wait_sum_s, run_sum_s, ord)
), minutes AS (
    INSERT INTO job_minute AS m (minute, queue, kind, outcome, finished,
                                 wait_sum_s, wait_buckets, run_sum_s, run_buckets)
    SELECT minute, queue, kind, outcome, finished, wait_sum_s, wait_buckets, run_sum_s,
           run_buckets
    FROM t
    ORDER BY minute, queue, kind, outcome
    ON CONFLICT (minute, queue, kind, outcome) DO UPDATE
    SET {_add_histograms("m")}
)
INSERT INTO job_hour AS h (hour, queue, kind, outcome, finished,
                           wait_sum_s, wait_buckets, run_sum_s, run_buckets)
SELECT date_bin('1 hour', minute, timestamptz 'epoch'), queue, kind, outcome, sum(finished),
       sum(wait_sum_s), {_summed("wait_buckets")}, sum(run_sum_s), {_summed("run_buckets")}
FROM t
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
ON CONFLICT (hour, queue, kind, outcome) DO UPDATE
SET {_add_histograms("h")}
"""


DEPTH_MARKER = ""
"""The `queue_depth.queue` of the row that says a minute was sampled (a real queue's name
has at least one character): the first worker to insert it counts the queues; the others
find it there and count nothing. Readers skip it, and read a sampled minute without a
queue's row as zero for that queue."""

# queue_depth: once a minute, each queue's queued and running counts, from the partial
# indexes QUEUE_STATS counts from too. The marker's insert is the guard: the worker whose
# insert takes it counts (the one-time filter keeps the others from touching `job`); a
# second worker in the same minute waits on the first's marker, then finds it and skips.
# Answers whether this call sampled, and how many seconds until the database's next minute.
SAMPLE_DEPTH = f"""
WITH marker AS (
    INSERT INTO queue_depth (minute, queue, queued, running)
    VALUES (date_trunc('minute', coalesce($1, now())), '{DEPTH_MARKER}', 0, 0)
    ON CONFLICT (minute, queue) DO NOTHING
    RETURNING minute
), sampled AS (
    INSERT INTO queue_depth (minute, queue, queued, running)
    SELECT (SELECT minute FROM marker), queue,
           count(*) FILTER (WHERE state = 'queued'),
           count(*) FILTER (WHERE state = 'running')
    FROM {LIVE_ROWS.format(scope="EXISTS (SELECT 1 FROM marker)")} l
    GROUP BY queue
    ON CONFLICT (minute, queue) DO NOTHING
    RETURNING queue
)
SELECT EXISTS (SELECT 1 FROM marker) AS sampled,
       (SELECT count(*) FROM sampled) AS queues,
       extract(epoch FROM date_trunc('minute', coalesce($1, now())) + interval '1 minute'
                          - coalesce($1, now()))::float8 AS next_minute_in_s
"""

# Retention of the per-minute aggregates: rows older than $1 days, at most $2 per table per
# call (the sampling worker calls it once a minute, so a backlog goes in bounded steps). The
# primary keys lead with `minute`, so the oldest rows are found without a scan.
PRUNE_JOB_MINUTE = """
DELETE FROM job_minute WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM job_minute
    WHERE minute < coalesce($3, now()) - make_interval(days => $1)
    ORDER BY minute LIMIT $2
))
"""

PRUNE_JOB_HOUR = """
DELETE FROM job_hour WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM job_hour
    WHERE hour < coalesce($3, now()) - make_interval(days => $1)
    ORDER BY hour LIMIT $2
))
"""

PRUNE_QUEUE_DEPTH = """
DELETE FROM queue_depth WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM queue_depth
    WHERE minute < coalesce($3, now()) - make_interval(days => $1)
    ORDER BY minute LIMIT $2
))
"""


# The dashboard's per-kind figures since $1 (a minute), by outcome, from the aggregates alone
# (`window_rows`; their primary keys lead with the time): never `job`, whatever its size.
KIND_TOTALS = f"""
SELECT kind, outcome, sum(finished)::bigint AS finished,
       {_summed("wait_buckets")} AS wait_buckets, {_summed("run_buckets")} AS run_buckets
FROM {window_rows("$1::timestamptz")} w
GROUP BY kind, outcome
ORDER BY kind, outcome
"""

# One kind's figures since $2 in buckets of $3 minutes (bucket starts on multiples of it
# since the Unix epoch, as `jobs.metrics.bucket_start`), by outcome.
KIND_SERIES = f"""
SELECT date_bin(make_interval(mins => $3), minute, timestamptz 'epoch') AS bucket, outcome,
       sum(finished)::bigint AS finished,
       {_summed("wait_buckets")} AS wait_buckets, {_summed("run_buckets")} AS run_buckets
FROM job_minute
WHERE minute >= $2 AND kind = $1
GROUP BY 1, 2
ORDER BY 1, 2
"""

# The same by the hour, from job_hour ($3 is 60): a day of one kind reads 24 rows per queue
# and outcome (by the minute, its 1,440 took 117 ms at 300 rows a minute).
KIND_SERIES_HOURLY = f"""
SELECT hour AS bucket, outcome, sum(finished)::bigint AS finished,
       {_summed("wait_buckets")} AS wait_buckets, {_summed("run_buckets")} AS run_buckets
FROM job_hour
WHERE hour >= $2 AND kind = $1 AND $3::int = 60
GROUP BY 1, 2
ORDER BY 1, 2
"""

# Queue depth since $1 in buckets of $2 minutes: the most queued and running of each queue's
# samples in the bucket (a spike stays visible in a day's chart), and the marker rows.
DEPTH_SERIES = """
SELECT date_bin(make_interval(mins => $2), minute, timestamptz 'epoch') AS bucket, queue,
       max(queued) AS queued, max(running) AS running
FROM queue_depth
WHERE minute >= $1
GROUP BY 1, 2
ORDER BY 1, 2
"""

# Finished jobs per minute over the last $2 minutes (the current one included, empty minutes
# as zeros), for the dashboard's throughput chart: read from job_finished_idx over a bounded
# window, never the whole history (job_stats keeps running totals with no time axis).
# $1 scopes to one owner (NULL: all).
THROUGHPUT = """
WITH minutes AS (
    SELECT generate_series(
        date_trunc('minute', now()) - make_interval(mins => $2 - 1),
        date_trunc('minute', now()),
        interval '1 minute'
    ) AS minute
), finished AS (
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'dead') AS dead,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled
    FROM job
    WHERE state IN ('succeeded', 'dead', 'cancelled')
      AND finished_at >= date_trunc('minute', now()) - make_interval(mins => $2 - 1)
      AND ($1::text IS NULL OR owner = $1)
    GROUP BY 1
)
SELECT m.minute,
       coalesce(f.succeeded, 0) AS succeeded,
       coalesce(f.dead, 0) AS dead,
       coalesce(f.cancelled, 0) AS cancelled
FROM minutes m LEFT JOIN finished f USING (minute)
ORDER BY 1
"""

# How many finished jobs a retry filter matches, so an operator sees the count before a bulk
# retry. `{where}` is `RetryFilter.where`, the same clause RETRY uses, so the two agree.
COUNT_RETRYABLE = """
SELECT count(*) FROM job WHERE state IN ('dead', 'cancelled') AND {where}
"""

NOW = "SELECT now()"
"""The database's clock: every decision about time that two processes could disagree on is
taken by it, not by theirs."""

SCHEMA_REVISION = "SELECT version_num FROM alembic_version"
"""The migration the schema is at: `/ready` answers 503 until it is the code's head."""
