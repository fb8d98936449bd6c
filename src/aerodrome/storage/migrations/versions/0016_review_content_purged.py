"""review items: when retention cleared their content

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 03:30:00

A decided review item keeps the held draft (inputs, output, citations), the released output and
the reviewer's note: content, as a run's input and output are. Retention now clears them after
the department's ``content_days`` (aerodrome.monitoring.retention); ``content_purged_at`` says
when, so the purge finds the items it has not cleared yet and a reader can say why the content
is gone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("content_purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("content_purged_at")
