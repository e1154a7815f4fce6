"""Each price bar says how it is adjusted: `split_dividend` (prices scaled so that splits and
dividends do not show as jumps, what a backtest needs) or `none` (as traded).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Bars stored before this were all as traded (the sample provider stored raw Quandl prices,
with splits as −45 % days): they are marked `none`. Ingesting the same symbols again
replaces them with adjusted bars.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE price_bar ADD COLUMN adjustment text NOT NULL DEFAULT 'none'"
        " CONSTRAINT price_bar_adjustment CHECK (adjustment IN ('none', 'split_dividend'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE price_bar DROP COLUMN adjustment")
