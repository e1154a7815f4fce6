"""Jobs that wait for others: the state `waiting`, and which job waits for which.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

A job submitted with `depends_on` waits, in a state of its own, until every parent has
succeeded; then it is queued (with its `job_ready` row). A parent that ends dead or
cancelled cancels its dependants, naming it, and theirs in turn. `has_dependants` tells the
finish of a parent, which returns it, that there is something to release: the finishes of
the jobs nobody waits for do nothing more. The reaper also decides every waiting job now and
then, so a worker that died between a parent's finish and the release loses nothing.

A dependency row goes with either of its jobs when retention deletes it: a pruned parent had
finished (a dead one had already cancelled its dependants), so it no longer holds anyone.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STATES = "'queued', 'running', 'succeeded', 'cancelled', 'dead'"


def upgrade() -> None:
    op.execute("ALTER TABLE job DROP CONSTRAINT job_state_known")
    op.execute(
        "ALTER TABLE job ADD CONSTRAINT job_state_known"
        f" CHECK (state IN ('waiting', {STATES})) NOT VALID"
    )
    op.execute("ALTER TABLE job VALIDATE CONSTRAINT job_state_known")
    op.execute("ALTER TABLE job ADD COLUMN has_dependants boolean NOT NULL DEFAULT false")
    op.execute(
        """
        CREATE TABLE job_dependency (
            job_id    bigint NOT NULL REFERENCES job (id) ON DELETE CASCADE,
            parent_id bigint NOT NULL REFERENCES job (id) ON DELETE CASCADE,
            PRIMARY KEY (job_id, parent_id),
            CONSTRAINT job_dependency_not_itself CHECK (job_id <> parent_id)
        )
        """
    )
    op.execute("CREATE INDEX job_dependency_parent_idx ON job_dependency (parent_id)")
    op.execute("CREATE INDEX job_waiting_idx ON job (id) WHERE state = 'waiting'")


def downgrade() -> None:
    op.execute("UPDATE job SET state = 'cancelled', finished_at = now() WHERE state = 'waiting'")
    op.execute("DROP INDEX job_waiting_idx")
    op.execute("DROP TABLE job_dependency")
    op.execute("ALTER TABLE job DROP COLUMN has_dependants")
    op.execute("ALTER TABLE job DROP CONSTRAINT job_state_known")
    op.execute(f"ALTER TABLE job ADD CONSTRAINT job_state_known CHECK (state IN ({STATES}))")
