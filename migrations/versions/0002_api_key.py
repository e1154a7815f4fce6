"""API keys: who may call the REST API, as which principal and role.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Only a SHA-256 of each key is stored. The keys are 32 random bytes, so a fast hash is
enough: there is no dictionary to try, and lookup by hash stays one index probe.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_key (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text        NOT NULL UNIQUE,
            role       text        NOT NULL,
            key_hash   text        NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz,
            CONSTRAINT api_key_role_known CHECK (role IN ('admin', 'user')),
            CONSTRAINT api_key_name_length CHECK (char_length(name) BETWEEN 1 AND 128)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_key")
