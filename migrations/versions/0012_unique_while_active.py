"""A key that dedupes a job only while it is queued or running.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Unlike an idempotency key, which names one job until it is pruned, `unique_key` lets a new
job in as soon as the previous one with it has finished: "refresh this leaderboard, unless a
refresh is already waiting or running". The partial unique index holds only active jobs
with a key, so a job without one never enters it, and a job leaves it when it finishes.
A submission with `debounce_s` also replaces a still-queued job's payload and pushes its
start back (see `jobs.sql.DEBOUNCE`).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE job ADD COLUMN unique_key text")
    op.execute(
        "ALTER TABLE job ADD CONSTRAINT job_unique_key_length"
        " CHECK (unique_key IS NULL OR char_length(unique_key) BETWEEN 1 AND 512)"
    )
    op.execute(
        "CREATE UNIQUE INDEX job_unique_active_idx ON job (owner, unique_key)"
        " WHERE unique_key IS NOT NULL AND state IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX job_unique_active_idx")
    op.execute("ALTER TABLE job DROP COLUMN unique_key")
