"""dashboards: daily rollups of every run (figures by department, use case and model; users)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_daily_figures",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department_id", sa.String(length=63), nullable=False),
        sa.Column("use_case_id", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cost_sum", sa.Float(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("latency_hist", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "department_id", "use_case_id", "alias", "deployment", name=op.f("pk_run_daily_figures")
        ),
    )
    op.create_table(
        "run_daily_users",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("department_id", sa.String(length=63), nullable=False),
        sa.Column("use_case_id", sa.String(length=128), nullable=False),
        sa.Column("principal", sa.String(length=320), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "department_id", "use_case_id", "principal", name=op.f("pk_run_daily_users")
        ),
    )
    # The dashboards' own watermark, beside the evidence rollups' ("runs"); none rolled up yet.
    state = sa.table("run_rollup_state", sa.column("name", sa.String()))
    op.bulk_insert(state, [{"name": "dashboard"}])


def downgrade() -> None:
    op.execute("DELETE FROM run_rollup_state WHERE name = 'dashboard'")
    op.drop_table("run_daily_users")
    op.drop_table("run_daily_figures")
