"""Shared fixtures: the mock upstream, a running gateway, databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from tests.harness import Gateway, base_config, postgres_available, postgres_database, run_gateway
from tests.upstream.fixtures import UpstreamServer, upstream, upstream_keyed  # noqa: F401


@pytest.fixture
def gateway(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:  # noqa: F811
    """A running gateway on SQLite in front of the mock upstream."""
    with run_gateway(base_config(upstream.url, db_url=f"sqlite:///{tmp_path}/gw.db"), tmp_path) as gw:
        yield gw


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and on PostgreSQL (127.0.0.1:5432)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not running at 127.0.0.1:5432 (CI starts it)")
    with postgres_database() as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database of each kind (``db_url``); a test module may define its own."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()
