"""Owners name their namespace: `key:NAME` for API keys, `jwt:ISSUER:SUB` for token users.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Before this, a job's owner was the bare key name or the bare JWT `sub`, one namespace for
two kinds of principal: a token whose `sub` was a key's name read that key's jobs. Existing
rows are relabelled by what can still be known:
- `system` (cron, operators' scripts) stays `system`;
- an owner that is the name of an API key becomes `key:NAME` (where a token user had the
  same name as a key, the two cannot be told apart any more: the key gets them);
- any other owner was a token user: `jwt:ISSUER:SUB` with the JWT_ISSUER this migration runs
  under, or `legacy:SUB` when none is set (admins still see those jobs; their users do not).
The owner column now holds up to 1,024 characters (an issuer of up to 512 and a sub of 256).
"""

import os

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RELABEL = """
UPDATE {table} SET owner = CASE
    WHEN owner IN (SELECT name FROM api_key) THEN 'key:' || owner
    ELSE :token_prefix || owner
END
WHERE owner <> 'system'
"""


def upgrade() -> None:
    issuer = os.environ.get("JWT_ISSUER")
    prefix = f"jwt:{issuer}:" if issuer else "legacy:"
    op.execute("ALTER TABLE job DROP CONSTRAINT job_owner_name")
    for table in ("job", "strategy_run"):
        op.get_bind().execute(sa.text(RELABEL.format(table=table)), {"token_prefix": prefix})
    op.execute(
        "ALTER TABLE job ADD CONSTRAINT job_owner_name"
        " CHECK (char_length(owner) BETWEEN 1 AND 1024)"
    )


def downgrade() -> None:
    """Back to bare names, as far as they can be told (a token user's under JWT_ISSUER)."""
    issuer = os.environ.get("JWT_ISSUER")
    prefixes = ["key:", "legacy:"] + ([f"jwt:{issuer}:"] if issuer else [])
    op.execute("ALTER TABLE job DROP CONSTRAINT job_owner_name")
    for table in ("job", "strategy_run"):
        for prefix in prefixes:
            op.get_bind().execute(
                sa.text(
                    f"UPDATE {table} SET owner = substr(owner, char_length(:p) + 1)"
                    " WHERE starts_with(owner, :p)"
                ),
                {"p": prefix},
            )
    op.execute("UPDATE job SET owner = left(owner, 256) WHERE char_length(owner) > 256")
    op.execute(
        "ALTER TABLE job ADD CONSTRAINT job_owner_name CHECK (char_length(owner) BETWEEN 1 AND 256)"
    )
