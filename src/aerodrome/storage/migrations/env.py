"""Alembic environment: the engine is handed in by aerodrome.storage.migrate."""

from __future__ import annotations

from alembic import context

from aerodrome.storage.tables import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
