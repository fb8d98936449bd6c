"""run contents: a run's input and output move from runs to run_contents (narrow run rows)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 00:10:00

Upgrade creates ``run_contents``, copies every run's content into it a batch of ids at a time
(``INSERT … SELECT`` over a range of ids, so no content passes through Python), then drops the
two columns from ``runs``. On SQLite the columns go with ``ALTER TABLE … DROP COLUMN`` (3.35+),
not by recreating the table: dropping the old ``runs`` table would cascade to the content just
copied. On PostgreSQL ``DROP COLUMN`` is instant and the old rows keep their space until they
are rewritten (``VACUUM FULL runs``, or retention deleting them); docs/operations.md says so.
Downgrade adds the columns back and copies the content back, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BATCH = 5_000


def _has_content(column: str) -> str:
    # None may be stored as SQL NULL or as the JSON value null, depending on the writer
    return f"({column} IS NOT NULL AND CAST({column} AS TEXT) <> 'null')"


def _in_batches(conn: sa.Connection, table: str, key: str, step: Callable[[str, str], object]) -> None:
    """Call ``step(low, high)`` for consecutive id ranges of ``table`` holding ``BATCH`` rows each
    (``low`` exclusive, ``high`` inclusive; the first ``low`` is the empty string)."""
    low = ""
    while True:
        high = conn.execute(
            sa.text(f"SELECT {key} FROM {table} WHERE {key} > :low ORDER BY {key} LIMIT 1 OFFSET :n"),
            {"low": low, "n": BATCH - 1},
        ).scalar()
        if high is None:
            high = conn.execute(
                sa.text(f"SELECT max({key}) FROM {table} WHERE {key} > :low"), {"low": low}
            ).scalar()
            if high is not None:
                step(low, high)
            return
        step(low, high)
        low = high


def upgrade() -> None:
    op.create_table(
        "run_contents",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_contents_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_contents")),
    )
    conn = op.get_bind()
    copy = sa.text(
        "INSERT INTO run_contents (run_id, input, output) SELECT id, input, output FROM runs"
        f" WHERE id > :low AND id <= :high AND ({_has_content('input')} OR {_has_content('output')})"
    )
    _in_batches(conn, "runs", "id", lambda low, high: conn.execute(copy, {"low": low, "high": high}))
    if conn.dialect.name == "sqlite":
        op.execute("ALTER TABLE runs DROP COLUMN input")
        op.execute("ALTER TABLE runs DROP COLUMN output")
    else:
        op.drop_column("runs", "output")
        op.drop_column("runs", "input")


def downgrade() -> None:
    op.add_column("runs", sa.Column("input", sa.JSON(), nullable=True))
    op.add_column("runs", sa.Column("output", sa.JSON(), nullable=True))
    conn = op.get_bind()
    back = sa.text(
        "UPDATE runs SET"
        " input = (SELECT c.input FROM run_contents c WHERE c.run_id = runs.id),"
        " output = (SELECT c.output FROM run_contents c WHERE c.run_id = runs.id)"
        " WHERE id IN (SELECT run_id FROM run_contents WHERE run_id > :low AND run_id <= :high)"
    )
    _in_batches(
        conn, "run_contents", "run_id", lambda low, high: conn.execute(back, {"low": low, "high": high})
    )
    op.drop_table("run_contents")
