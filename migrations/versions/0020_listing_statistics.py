"""Statistics on how a job's state goes with its owner, kind and queue, for the listings'
plans.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02

The planner assumes columns independent: with 1,000,000 finished jobs, an owner with 5 % of
them and dead jobs 2 % of all, it expected about 1,000 of that owner's dead jobs where there
were none, and walked the whole primary key backwards looking for them (358 ms) instead of
reading the owner's index (0.1 ms). Multivariate MCV lists (`CREATE STATISTICS … (mcv)`),
kept by ANALYZE, tell it which pairs are common and which are rare. They cost nothing when a
job is written.
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

PAIRS = {
    "job_owner_state_stats": "owner",
    "job_kind_state_stats": "kind",
    "job_queue_state_stats": "queue",
}


def upgrade() -> None:
    for name, column in PAIRS.items():
        op.execute(f"CREATE STATISTICS {name} (mcv) ON {column}, state FROM job")


def downgrade() -> None:
    for name in PAIRS:
        op.execute(f"DROP STATISTICS {name}")
