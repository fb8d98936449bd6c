"""Schema migrations with Alembic, driven from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from aerodrome.errors import SchemaOutOfDate

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_alembic_config(engine), revision)


def ensure_current(engine: Engine, *, auto_migrate: bool) -> None:
    """Migrate (embedded mode) or refuse to serve on a stale schema (scaled mode)."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return
    if auto_migrate:
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"the database schema is at revision {current or 'none (empty database)'} but this version "
        f"of Aerodrome needs {head}; run `aerodrome db upgrade --config <your config>` first"
    )
