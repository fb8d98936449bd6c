"""dashboards: usage only (evaluation and red-team runs left out); the figures index names the endpoint

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 03:40:00

The dashboards show how people use the platform; evaluation suites and red-team runs are the
platform testing itself (hundreds of runs in minutes, most of a red team's refused) and made
adoption, runs, errors and latency misleading. The dashboards' daily rollups and raw reads now
leave out runs whose endpoint is ``eval`` or ``redteam``
(aerodrome.monitoring.daily_rollups.NOT_USAGE). ``ix_runs_console_figures`` gains ``endpoint`` so
the raw reads stay on the index alone, and the daily rollups are emptied with their watermark
reset: the next rollup job rolls the run table up again without those runs (about 5 s per
100,000 runs; until then the dashboards read the runs themselves, through that index).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BEFORE = [
    "created_at",
    "department_id",
    "use_case_id",
    "alias",
    "deployment",
    "principal",
    "status",
    "cost_usd",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
]


def _reset_rollups() -> None:
    op.execute(sa.text("DELETE FROM run_daily_figures"))
    op.execute(sa.text("DELETE FROM run_daily_users"))
    op.execute(sa.text("UPDATE run_rollup_state SET watermark = NULL WHERE name = 'dashboard'"))


def upgrade() -> None:
    op.drop_index("ix_runs_console_figures", table_name="runs")
    op.create_index("ix_runs_console_figures", "runs", [*BEFORE, "endpoint"], unique=False)
    _reset_rollups()


def downgrade() -> None:
    op.drop_index("ix_runs_console_figures", table_name="runs")
    op.create_index("ix_runs_console_figures", "runs", BEFORE, unique=False)
    _reset_rollups()
