"""Fair share between owners: claims take jobs in turn order, not submission order.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

Until now a queue was one line by priority and start time, so a user who submitted 10,000
jobs had every worker until they were done. Each ready row now carries its owner and its
`turn`, given when the job becomes ready (see `jobs.sql._ready`): an owner's jobs are spaced
one quantum apart (divided by the owner's weight in `owner_share`), starting from the
queue's current turn, so the jobs of an owner who just arrived are interleaved with the head
of a long backlog instead of waiting behind all of it. Claims read rows by (priority, turn):
still one ordered index scan, no per-owner work at claim time, whatever the number of owners.

A job whose start lies ahead (a delay, a retry's backoff, a snooze) has no turn yet: it waits
in start order (`job_ready_later`'s index, the claim order of before) and goes first once due.

Queued jobs keep their order: their turn is their start.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE job_ready ADD COLUMN owner text NOT NULL DEFAULT '', "
        "ADD COLUMN turn timestamptz"
    )
    op.execute(
        "UPDATE job_ready r SET owner = j.owner, "
        "turn = CASE WHEN j.run_at > now() THEN NULL ELSE j.run_at END "
        "FROM job j WHERE j.id = r.id"
    )
    op.execute("ALTER TABLE job_ready ALTER COLUMN owner DROP DEFAULT")
    op.execute("DROP INDEX job_ready_claim_idx")
    # The claim's two orders: ready jobs by turn, jobs not yet due by start (jobs.sql.CLAIM).
    op.execute(
        "CREATE INDEX job_ready_turn_idx ON job_ready (queue, priority DESC, turn, id) "
        "WHERE turn IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX job_ready_later_idx ON job_ready (queue, priority DESC, run_at, id) "
        "WHERE turn IS NULL"
    )
    # An owner's last turn in a queue, where its next job's turn starts from.
    op.execute(
        "CREATE INDEX job_ready_owner_idx ON job_ready (queue, owner, turn) WHERE turn IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE owner_share (
            owner      text        PRIMARY KEY,
            weight     real        NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text        NOT NULL,
            CONSTRAINT owner_share_owner CHECK (char_length(owner) BETWEEN 1 AND 1024),
            CONSTRAINT owner_share_weight CHECK (weight >= 0.01 AND weight <= 100)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE owner_share")
    op.execute("DROP INDEX job_ready_owner_idx")
    op.execute("DROP INDEX job_ready_later_idx")
    op.execute("DROP INDEX job_ready_turn_idx")
    op.execute("CREATE INDEX job_ready_claim_idx ON job_ready (queue, priority DESC, run_at, id)")
    op.execute("ALTER TABLE job_ready DROP COLUMN turn, DROP COLUMN owner")
