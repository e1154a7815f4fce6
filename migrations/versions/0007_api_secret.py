"""The API's own secrets, shared by every API process: the key stream tokens are signed with.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Stream tokens (`POST /v1/jobs/{id}/stream-token`) are verified by whichever API process
the browser reaches, so the key cannot be a per-process random one. CONVEYOR_API_STREAM_SECRET
overrides it; without that, this row is the key. It is generated here, 32 bytes from the
operating system's generator.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_secret (
            name       text        PRIMARY KEY,
            value      bytea       NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.get_bind().execute(
        sa.text("INSERT INTO api_secret (name, value) VALUES ('stream_token', :value)"),
        {"value": secrets.token_bytes(32)},
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_secret")
