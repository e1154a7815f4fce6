"""Queues an operator controls: paused, or limited to a number of running jobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A queue is controlled while its row says paused or has a concurrency limit; a queue with no
row (or one that says neither: the last operator's change is kept) is claimed by the
one-statement claim, whose guard is one primary-key probe of this small table. A controlled
queue is claimed under its row's lock, so claims from every worker and host take turns and
count what is running exactly (see `jobs.sql.LOCK_QUEUE_CONTROL`).
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE queue_control (
            queue       text        PRIMARY KEY,
            paused      boolean     NOT NULL DEFAULT false,
            concurrency integer,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            updated_by  text        NOT NULL,
            CONSTRAINT queue_control_name CHECK (char_length(queue) BETWEEN 1 AND 128),
            CONSTRAINT queue_control_concurrency CHECK (concurrency >= 0)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE queue_control")
