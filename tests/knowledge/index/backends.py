"""Index backends for tests: SQLite with sqlite-vec, SQLite with the numpy fallback, and PostgreSQL.

PostgreSQL comes from ``pgserver`` (a pip-installed PostgreSQL 16 with pgvector), one
server per session and one schema per test; those tests skip when it is not installed.
Test modules import the fixtures: ``from tests.knowledge.index.backends import backend``.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from aerodrome.knowledge.index.base import IndexBackend
from aerodrome.knowledge.index.sqlite import SQLiteIndex

BACKENDS = ["sqlite-vec", "sqlite-numpy", "postgres"]


def sqlite_vec_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("pysqlite3", "sqlite_vec"))


@pytest.fixture(scope="session")
def pg_server_uri() -> Iterator[str]:
    if importlib.util.find_spec("pgserver") is None:
        pytest.skip("pgserver is not installed (pip install pgserver): no PostgreSQL with pgvector for tests")
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        server = pgserver.get_server(
            Path(tempfile.gettempdir()) / f"aerodrome-pg-{os.getpid()}", cleanup_mode="delete"
        )
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield uri
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server.cleanup()


_schemas = itertools.count()


def make_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **options: Any) -> IndexBackend:
    if kind == "sqlite-vec":
        if not sqlite_vec_available():
            pytest.skip("pysqlite3-binary and sqlite-vec are not installed")
        return SQLiteIndex(tmp_path / "vec.db", vector_engine="sqlite-vec", **options)
    if kind == "sqlite-numpy":
        return SQLiteIndex(tmp_path / "numpy.db", vector_engine="numpy", **options)
    import psycopg

    from aerodrome.knowledge.index.postgres import PostgresIndex

    uri = request.getfixturevalue("pg_server_uri")
    schema = f"t{next(_schemas)}_{tmp_path.name.lower()[-20:]}".replace("-", "_")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return PostgresIndex(f"{uri}&options={quote(f'-csearch_path={schema},public')}", **options)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    index = make_backend(request.param, tmp_path, request)
    yield index
    index.close()
