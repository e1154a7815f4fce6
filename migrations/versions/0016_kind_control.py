"""Kinds an operator limits: at most N running of a kind, or N per owner within it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

A kind with a `kind_control` row has a lane of its own: its ready rows carry the row's
`lane` (0 is every other kind's), so the claims that read lane 0 never walk past a limited
kind's backlog, and the lane is claimed under the control row's lock, so that claims from
every worker and host take turns and count what is running exactly (`jobs.sql.CLAIM_LANE`).
A kind keeps its lane once it has one (lifting the limits leaves the row): rows already in
it are claimed all the same.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = {
    "job_ready_turn_idx": "(queue, {lane}priority DESC, turn, id) WHERE turn IS NOT NULL",
    "job_ready_later_idx": "(queue, {lane}priority DESC, run_at, id) WHERE turn IS NULL",
    "job_ready_owner_idx": "(queue, {lane}owner, turn) WHERE turn IS NOT NULL",
}


def _indexes(lane: str) -> None:
    for name, columns in INDEXES.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON job_ready {columns.format(lane=lane)}")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE kind_control (
            kind              text        PRIMARY KEY,
            lane              smallint    GENERATED ALWAYS AS IDENTITY (MINVALUE 1) UNIQUE,
            concurrency       integer,
            owner_concurrency integer,
            updated_at        timestamptz NOT NULL DEFAULT now(),
            updated_by        text        NOT NULL,
            CONSTRAINT kind_control_name CHECK (char_length(kind) BETWEEN 1 AND 128),
            CONSTRAINT kind_control_concurrency CHECK (concurrency >= 0),
            CONSTRAINT kind_control_owner_concurrency CHECK (owner_concurrency >= 0)
        )
        """
    )
    op.execute("ALTER TABLE job_ready ADD COLUMN lane smallint NOT NULL DEFAULT 0")
    _indexes("lane, ")


def downgrade() -> None:
    # the lanes' rows go back to the one line, in start order
    op.execute(
        "INSERT INTO job_ready (id, queue, priority, run_at, owner, turn, generation) "
        "SELECT r.id, r.queue, r.priority, r.run_at, r.owner, r.turn, 0 "
        "FROM job_ready r WHERE r.lane <> 0"
    )
    op.execute("DELETE FROM job_ready WHERE lane <> 0")
    _indexes("")
    op.execute("ALTER TABLE job_ready DROP COLUMN lane")
    op.execute("DROP TABLE kind_control")
