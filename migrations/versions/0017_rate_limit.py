"""Rate limits per kind: at most N of a kind's jobs start in any window of S seconds, over
every worker and host, for the kind as a whole or per partition (each owner, or each value
of a payload field such as `provider`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

A rate lives on the kind's `kind_control` row, so its jobs are claimed in the kind's lane
under that row's lock (`jobs.sql.CLAIM_LANE`), where claims from every worker take turns.
`rate_window` holds, per partition, the starts inside the last window: one (time, count)
pair per claim that started jobs, oldest first. A claim drops the pairs that left the
window, counts the rest, starts at most what is left, and appends its own pair; so the
state of a partition is at most one pair per claim within a window, and the limit is exact
over any sliding window, not only over windows aligned to a clock.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        r"""
        ALTER TABLE kind_control
            ADD COLUMN rate_allowed integer,
            ADD COLUMN rate_period_s double precision,
            ADD COLUMN rate_partition text,
            ADD CONSTRAINT kind_control_rate CHECK (
                (rate_allowed IS NULL) = (rate_period_s IS NULL)
                AND (rate_allowed IS NOT NULL OR rate_partition IS NULL)
            ),
            ADD CONSTRAINT kind_control_rate_allowed CHECK (rate_allowed BETWEEN 1 AND 1000000),
            ADD CONSTRAINT kind_control_rate_period CHECK (rate_period_s BETWEEN 0.001 AND 604800),
            ADD CONSTRAINT kind_control_rate_partition CHECK (
                rate_partition = 'owner' OR rate_partition ~ '^payload\.[A-Za-z0-9_]{1,64}$'
            )
        """
    )
    op.execute(
        """
        CREATE TABLE rate_window (
            kind      text          NOT NULL REFERENCES kind_control ON DELETE CASCADE,
            part      text          NOT NULL,
            starts_at timestamptz[] NOT NULL,
            starts_n  integer[]     NOT NULL,
            PRIMARY KEY (kind, part),
            CONSTRAINT rate_window_pairs CHECK (
                cardinality(starts_at) = cardinality(starts_n)
            )
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rate_window")
    op.execute(
        "ALTER TABLE kind_control DROP COLUMN rate_allowed, DROP COLUMN rate_period_s, "
        "DROP COLUMN rate_partition"
    )
