"""What the operator's dashboard reads beyond the queue itself: a worker's version and jobs
done, an audit log of operators' destructive actions, and per-minute aggregates of finished
jobs and queue depth, so its charts never scan `job`.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

- `worker.version` is the Conveyor version the process runs; `worker.jobs_done` counts the
  jobs it finished, added with each heartbeat; `worker.kinds` lists the kinds it runs with
  their defaults (`[{"kind", "timeout_s", "cpu_bound"}]`), which only the worker knows (the
  API has the payload models, not the handlers).
- `audit_event` outlives what it describes: a deleted job's own events go with its row
  (`job_event` cascades), so who deleted which jobs is written here.
- `job_minute` holds, per minute, queue, kind and outcome, how many jobs finished and
  histograms of how long each waited (due → started) and ran (started → finished), with the
  bounds of `jobs.metrics.DURATION_BUCKETS_S` plus +Inf. Workers add their tallies with
  their heartbeat, as they do to `job_stats`; rows are per minute, so a chart over a day
  reads at most 1,440 rows per (queue, kind, outcome), whatever the size of `job`.
- `queue_depth` samples, once a minute, each queue's queued and running counts (the first
  worker to heartbeat in a minute writes it; the others find the row there).
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE worker
            ADD COLUMN version text NOT NULL DEFAULT '',
            ADD COLUMN jobs_done bigint NOT NULL DEFAULT 0,
            ADD COLUMN kinds jsonb NOT NULL DEFAULT '[]'
        """
    )
    op.execute(
        """
        CREATE TABLE audit_event (
            id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at     timestamptz NOT NULL DEFAULT now(),
            actor  text        NOT NULL,
            action text        NOT NULL,
            data   jsonb       NOT NULL DEFAULT '{}',
            CONSTRAINT audit_event_action_name CHECK (char_length(action) BETWEEN 1 AND 64)
        )
        """
    )
    op.execute("CREATE INDEX audit_event_at_idx ON audit_event (at)")
    op.execute(
        """
        CREATE TABLE job_minute (
            minute       timestamptz NOT NULL,
            queue        text        NOT NULL,
            kind         text        NOT NULL,
            outcome      text        NOT NULL,
            finished     bigint      NOT NULL DEFAULT 0,
            wait_sum_s   float8      NOT NULL DEFAULT 0,
            wait_buckets bigint[]    NOT NULL,
            run_sum_s    float8      NOT NULL DEFAULT 0,
            run_buckets  bigint[]    NOT NULL,
            PRIMARY KEY (minute, queue, kind, outcome),
            CONSTRAINT job_minute_on_the_minute CHECK (minute = date_trunc('minute', minute))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE queue_depth (
            minute  timestamptz NOT NULL,
            queue   text        NOT NULL,
            queued  bigint      NOT NULL,
            running bigint      NOT NULL,
            PRIMARY KEY (minute, queue)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE queue_depth")
    op.execute("DROP TABLE job_minute")
    op.execute("DROP TABLE audit_event")
    op.execute("ALTER TABLE worker DROP COLUMN kinds, DROP COLUMN jobs_done, DROP COLUMN version")
