"""job_stats: finished jobs per (queue, kind, outcome), with a duration histogram.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Workers add their tallies every few seconds (jobs.metrics); the rows only grow, which is
what a Prometheus counter needs. `duration_buckets` holds per-bucket (not cumulative)
counts for the bounds in jobs.metrics.DURATION_BUCKETS_S plus a last +Inf bucket; a job
whose duration nobody measured (an expired lease) counts in `finished` only.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE job_stats (
            queue            text        NOT NULL,
            kind             text        NOT NULL,
            outcome          text        NOT NULL,
            finished         bigint      NOT NULL DEFAULT 0,
            duration_sum_s   float8      NOT NULL DEFAULT 0,
            duration_buckets bigint[]    NOT NULL,
            updated_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (queue, kind, outcome),
            CONSTRAINT job_stats_counts_nonnegative CHECK (finished >= 0 AND duration_sum_s >= 0)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE job_stats")
