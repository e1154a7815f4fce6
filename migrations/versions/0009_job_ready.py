"""Claims read a narrow `job_ready` table whose two halves are emptied with TRUNCATE.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

A claim used to walk `job_claim_idx` from its start. Every job claimed leaves a dead entry
there, and while any session holds back the vacuum horizon (a long report, an idle
transaction) none of them can be removed or even marked dead in the index, so each claim
walked past every job claimed since the horizon was pinned: measured, claims of 100 went
from 3 to 19 ms after 80,000 jobs. `job_ready` holds one row per queued job (id and its claim
order only). A claim deletes the rows it takes. It has two partitions: new rows go to the
current one (the sequence `job_ready_generation`, read without a row lock or a row version),
and `Store.rotate_ready` empties the other with TRUNCATE once its rows are claimed or moved,
then makes it current. TRUNCATE drops dead rows whatever any snapshot holds, so the dead
entries a claim can meet are bounded by what the two halves took in since the last rotation.

`job_claim_idx` keeps serving the reads that count or list queued jobs (stats, the active
jobs widget); it is renamed `job_queued_idx` for what it now is. Queued jobs are copied in.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE job_ready_generation MINVALUE 0 MAXVALUE 1 START 0 NO CYCLE")
    op.execute(
        """
        CREATE TABLE job_ready (
            id         bigint      NOT NULL,
            queue      text        NOT NULL,
            priority   smallint    NOT NULL,
            run_at     timestamptz NOT NULL,
            generation smallint    NOT NULL
        ) PARTITION BY LIST (generation)
        """
    )
    for generation in (0, 1):
        op.execute(
            f"CREATE TABLE job_ready_{generation} PARTITION OF job_ready "
            f"FOR VALUES IN ({generation})"
        )
    # The claim's order, one queue at a time (see jobs.sql.CLAIM).
    op.execute("CREATE INDEX job_ready_claim_idx ON job_ready (queue, priority DESC, run_at, id)")
    op.execute("ALTER INDEX job_claim_idx RENAME TO job_queued_idx")
    op.execute(
        "INSERT INTO job_ready (id, queue, priority, run_at, generation) "
        "SELECT id, queue, priority, run_at, 0 FROM job WHERE state = 'queued'"
    )


def downgrade() -> None:
    op.execute("ALTER INDEX job_queued_idx RENAME TO job_claim_idx")
    op.execute("DROP TABLE job_ready")
    op.execute("DROP SEQUENCE job_ready_generation")
