"""An owner's jobs by state in id order: the listings' keyset (newest first, by id) read
straight from the index.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02

`job_owner_listing_idx` was (owner, state, created_at). A listing orders by id, so for an
owner's dead jobs the planner chose between that index and a sort, or a walk back along the
primary key filtering on owner and state; with 1,000,000 jobs and an owner without a dead
job it walked the whole key (300 ms), the two plans' estimated costs within 4 % of each
other. (owner, state, id) answers that listing in one backward range scan, and serves what
the old index served (an owner's counts per state; quotas' queued counts). It costs the same
to keep: the same width, replaced, not added.

On a large table, build the new index first without blocking writes, then upgrade:
`CREATE INDEX CONCURRENTLY job_owner_id_idx ON job (owner, state, id)`.
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS job_owner_id_idx ON job (owner, state, id)")
    op.execute("DROP INDEX job_owner_listing_idx")


def downgrade() -> None:
    op.execute("CREATE INDEX job_owner_listing_idx ON job (owner, state, created_at)")
    op.execute("DROP INDEX job_owner_id_idx")
