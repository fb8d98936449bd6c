"""run_rollups: a covering index for the evidence window's sums

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 00:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = [
    "usecase_id",
    "department_id",
    "user_key",
    "day",
    "runs",
    "ok",
    "errors",
    "fallbacks",
    "flagged",
    "cache_hits",
    "cost_sum",
    "cost_sq_sum",
    "latency_sum",
]


def upgrade() -> None:
    op.create_index("ix_run_rollups_sums", "run_rollups", COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_run_rollups_sums", table_name="run_rollups")
