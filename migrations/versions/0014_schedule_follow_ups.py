"""Schedules that chain: each fire's job is followed by its schedule's follow-ups.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

`follow_ups` is a list of {kind, payload}: a fire enqueues the schedule's job, then each
follow-up depending on the one before it (`depends_on`), so the daily ingest is followed by
the patterns and a leaderboard refresh in that order, and a failed ingest cancels them. Each
has its own idempotency key beside the fire's, so however many workers fire a tick, one chain
is made. Existing schedules get none: an operator's schedule is never changed for them.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE schedule ADD COLUMN follow_ups jsonb NOT NULL DEFAULT '[]'")
    op.execute(
        "ALTER TABLE schedule ADD CONSTRAINT schedule_follow_ups_array"
        " CHECK (jsonb_typeof(follow_ups) = 'array')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE schedule DROP COLUMN follow_ups")
