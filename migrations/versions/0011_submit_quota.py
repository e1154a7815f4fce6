"""What a non-admin may submit: a priority range, the queues, how many queued jobs at once,
and whether the demo kinds.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

One row per owner with its own quota, and the row `*`, which applies to every other
non-admin (admins are not limited). The API reads them (cached for a second) on every
submission by a user; an admin edits them with PUT /v1/quotas/{owner}.

The default keeps a user from jumping every queue (priorities −10 to 10, where the API
allows −32,768 to 32,767), from filling the table (10,000 queued jobs), and from the demo
kinds, whose payloads exist to load the machine (`demo.cpu` takes up to 10^10 iterations).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE submit_quota (
            owner        text        PRIMARY KEY,
            priority_min smallint    NOT NULL,
            priority_max smallint    NOT NULL,
            queues       text[],
            max_queued   integer,
            demo_kinds   boolean     NOT NULL,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            updated_by   text        NOT NULL,
            CONSTRAINT submit_quota_owner CHECK (char_length(owner) BETWEEN 1 AND 1024),
            CONSTRAINT submit_quota_priorities CHECK (priority_min <= priority_max),
            CONSTRAINT submit_quota_max_queued CHECK (max_queued >= 0)
        )
        """
    )
    op.execute(
        """
        INSERT INTO submit_quota (owner, priority_min, priority_max, queues, max_queued,
                                  demo_kinds, updated_by)
        VALUES ('*', -10, 10, NULL, 10000, false, 'migration 0011')
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE submit_quota")
