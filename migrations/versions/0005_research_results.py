"""Research results: strategy_run, pattern, leaderboard_snapshot and its entries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Results outlive the jobs that made them (`conveyor prune` deletes old jobs, not research), so
`job_id` is a plain column, not a foreign key. A run is its job owner's; `published` ones
(the platform's own research, or an admin's with `publish`) are everyone's to read and rank.
Every table has a natural unique key that the kind writing it upserts on, so an attempt that
runs twice (a lost lease, a crash between storing and finishing) rewrites its rows instead
of adding them again.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

METRICS = """
    total_return          float8,
    cagr                  float8,
    annual_volatility     float8,
    sharpe                float8,
    sortino               float8,
    max_drawdown          float8,
    max_drawdown_duration integer,
    calmar                float8,
    win_rate              float8,
    trades                integer,
    exposure              float8
"""


def upgrade() -> None:
    # one statement per call: the asyncpg driver prepares each, and a prepared statement
    # holds a single command
    for statement in (
        f"""
        CREATE TABLE strategy_run (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      bigint      NOT NULL,
            owner       text        NOT NULL,
            kind        text        NOT NULL,
            symbol      text        NOT NULL,
            interval    text        NOT NULL,
            family      text        NOT NULL,
            params      jsonb       NOT NULL,
            sample      text        NOT NULL,
            selected    boolean     NOT NULL DEFAULT false,
            published   boolean     NOT NULL DEFAULT false,
            start_ts    timestamptz NOT NULL,
            end_ts      timestamptz NOT NULL,
            bars        integer     NOT NULL,
            cost        float8      NOT NULL,
            risk_free   float8      NOT NULL,
            conventions jsonb       NOT NULL,
            benchmark   jsonb,
            created_at  timestamptz NOT NULL DEFAULT now(),
            {METRICS},
            CONSTRAINT strategy_run_sample CHECK (sample IN ('in', 'out', 'walk_forward')),
            CONSTRAINT strategy_run_once UNIQUE (job_id, symbol, family, params, sample)
        )
        """,
        """
        CREATE INDEX strategy_run_newest ON strategy_run (owner, id DESC)
        """,
        """
        CREATE INDEX strategy_run_selected ON strategy_run (created_at) WHERE selected AND published
        """,
        """
        CREATE TABLE pattern (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            symbol     text        NOT NULL,
            interval   text        NOT NULL,
            ts         timestamptz NOT NULL,
            pattern    text        NOT NULL,
            direction  text        NOT NULL,
            strength   float8      NOT NULL,
            job_id     bigint      NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pattern_direction CHECK (direction IN ('bullish', 'bearish', 'neutral')),
            CONSTRAINT pattern_once UNIQUE (symbol, interval, ts, pattern)
        )
        """,
        """
        CREATE INDEX pattern_by_symbol ON pattern (symbol, ts DESC, id DESC)
        """,
        """
        CREATE TABLE leaderboard_snapshot (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      bigint      NOT NULL UNIQUE,
            metric      text        NOT NULL,
            window_days integer,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE leaderboard_entry (
            snapshot_id bigint  NOT NULL REFERENCES leaderboard_snapshot (id) ON DELETE CASCADE,
            rank        integer NOT NULL,
            strategy_id bigint  NOT NULL,
            symbol      text    NOT NULL,
            family      text    NOT NULL,
            params      jsonb   NOT NULL,
            score       float8  NOT NULL,
            metrics     jsonb   NOT NULL,
            PRIMARY KEY (snapshot_id, rank)
        )
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE leaderboard_entry, leaderboard_snapshot, pattern, strategy_run")
