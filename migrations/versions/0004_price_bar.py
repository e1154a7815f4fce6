"""price_bar: one row per (symbol, interval, bar time), written idempotently.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`source` says where each bar came from (sample, csv, synthetic, yahoo), so synthetic bars
are never mistaken for market data.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE price_bar (
            symbol   text        NOT NULL,
            interval text        NOT NULL,
            ts       timestamptz NOT NULL,
            open     float8      NOT NULL,
            high     float8      NOT NULL,
            low      float8      NOT NULL,
            close    float8      NOT NULL,
            volume   float8      NOT NULL,
            source   text        NOT NULL,
            PRIMARY KEY (symbol, interval, ts),
            CONSTRAINT price_bar_positive CHECK (open > 0 AND high > 0 AND low > 0 AND close > 0),
            CONSTRAINT price_bar_high_low CHECK (high >= low),
            CONSTRAINT price_bar_volume CHECK (volume >= 0),
            CONSTRAINT price_bar_symbol CHECK (char_length(symbol) BETWEEN 1 AND 32)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE price_bar")
