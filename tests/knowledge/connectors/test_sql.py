"""The SQL connector: rows as documents; failing SQL as one source error that never leaks the password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aerodrome.knowledge.connectors import SqlConnector, make_connector
from aerodrome.knowledge.connectors.sql import QUERY_SOURCE_ID
from aerodrome.knowledge.parsers import parse


@pytest.fixture
def kb(tmp_path: Path) -> str:
    path = tmp_path / "kb.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE articles (id INTEGER, title TEXT, body TEXT, updated TEXT, team TEXT)")
        db.executemany(
            "INSERT INTO articles VALUES (?, ?, ?, ?, ?)",
            [
                (1, "Reset password", "Use the portal.", "2024-03-01T09:00:00", "it"),
                (2, "No body", None, None, "it"),
                (3, None, "Nul\x00 byte inside.", None, "hr"),
            ],
        )
    return f"sqlite:///{path}"


def test_rows_are_documents(kb: str) -> None:
    source = {"kind": "sql", "url": kb, "query": "SELECT * FROM articles ORDER BY id", "text_column": "body",
              "modified_column": "updated"}  # fmt: skip
    docs = list(make_connector(source).documents())
    assert [d.source_id for d in docs] == ["1", "2", "3"]
    first = docs[0]
    assert (first.title, first.text, first.uri) == ("Reset password", "Use the portal.", "sql://kb.db/1")
    assert first.metadata["fields"] == {"team": "it"}
    assert first.modified_at is not None and first.modified_at.isoformat() == "2024-03-01T09:00:00+00:00"
    assert docs[1].error == "row 2: 'body' is NULL"
    assert parse(docs[2]).warnings == ["1 NUL byte removed"]


def test_failing_sql_is_one_source_error(kb: str) -> None:
    docs = list(SqlConnector({"url": kb, "query": "SELECT * FROM no_such_table"}).documents())
    assert len(docs) == 1
    assert docs[0].source_id == QUERY_SOURCE_ID and docs[0].metadata["source_error"] is True
    assert docs[0].error == "query failed: OperationalError: no such table: no_such_table"


def test_missing_columns_are_one_source_error(kb: str) -> None:
    docs = list(SqlConnector({"url": kb, "query": "SELECT id, title FROM articles"}).documents())
    assert [d.error for d in docs] == ["the query has no column 'text' (columns: id, title)"]


def test_bad_urls_are_source_errors_without_the_password() -> None:
    docs = list(SqlConnector({"url": "not a url", "query": "SELECT 1"}).documents())
    assert docs[0].error == "invalid SQLAlchemy URL <invalid URL>"
    docs = list(SqlConnector({"url": "nosuchdb://u:pw@h/db", "query": "SELECT 1"}).documents())
    assert docs[0].error is not None and docs[0].error.startswith("cannot use nosuchdb://u:***@h/db")
    closed = "postgresql+psycopg://reader:s3cret-pass@127.0.0.1:1/kb?connect_timeout=2"
    docs = list(SqlConnector({"url": closed, "query": "SELECT 1"}).documents())
    assert len(docs) == 1 and docs[0].error is not None and docs[0].error.startswith("query failed")
    assert "s3cret-pass" not in repr(docs[0])
