"""The SQL connector: each row of a query over any SQLAlchemy URL is a document.

Failing SQL (bad URL, unreachable server, missing table, error while reading) does
not raise: it yields **one error document** whose ``source_id`` is ``sql:query``, with
``metadata["source_error"] = True`` so a sync keeps the documents it already has.
Rows yielded before a mid-query failure stand. A row whose text column is NULL is an
error document for that row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from aerodrome.knowledge.connectors.base import error_document, parse_timestamp
from aerodrome.knowledge.documents import SourceDocument
from aerodrome.knowledge.parsers import media_types
from aerodrome.knowledge.parsers.decoding import clean_text

QUERY_SOURCE_ID = "sql:query"


class SqlSource(BaseModel):
    """A query whose rows are documents. The URL may hold a password: it is never put in a document."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sql"] = "sql"
    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db or sqlite:///kb.db")
    query: str
    id_column: str = "id"
    title_column: str | None = "title"
    text_column: str = "text"
    modified_column: str | None = None
    name: str | None = Field(
        default=None, description="name in document URIs (sql://NAME/ID); default the database"
    )


def _safe_url(url: str) -> tuple[URL | None, str]:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None, "<invalid URL>"
    return parsed, parsed.render_as_string(hide_password=True)


class SqlConnector:
    """Runs the query once per sync and streams its rows."""

    config_type: ClassVar[type[BaseModel]] = SqlSource

    def __init__(self, config: SqlSource | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, SqlSource) else SqlSource.model_validate(config)
        url, _ = _safe_url(self.config.url)
        database = (url.database or "").rsplit("/", 1)[-1] if url is not None else ""
        self.name = self.config.name or database or "sql"

    def documents(self) -> Iterator[SourceDocument]:
        """One document per row; a failing query → one source error document (see the module doc)."""
        url, shown = _safe_url(self.config.url)
        if url is None:
            yield self._failure(f"invalid SQLAlchemy URL {shown}")
            return
        try:
            engine = create_engine(url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            yield self._failure(f"cannot use {shown}: {type(exc).__name__}: {exc}")
            return
        try:
            with engine.connect() as connection:
                result = connection.execution_options(stream_results=True).execute(text(self.config.query))
                columns = set(result.keys())
                missing = [c for c in (self.config.id_column, self.config.text_column) if c not in columns]
                if missing:
                    found = ", ".join(sorted(columns)) or "none"
                    yield self._failure(f"the query has no column {missing[0]!r} (columns: {found})")
                    return
                for number, row in enumerate(result.mappings(), start=1):
                    yield self._row(dict(row), number)
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            yield self._failure(f"query failed: {type(exc).__name__}: {detail}")
        finally:
            engine.dispose()

    def _failure(self, reason: str) -> SourceDocument:
        return error_document(QUERY_SOURCE_ID, f"sql://{self.name}", reason, source_error=True)

    def _row(self, row: dict[str, Any], number: int) -> SourceDocument:
        c = self.config
        raw_id = row.get(c.id_column)
        source_id = clean_text(str(raw_id))[0] if raw_id not in (None, "") else f"row-{number}"
        uri = f"sql://{self.name}/{source_id}"
        used = {c.id_column, c.title_column, c.text_column, c.modified_column}
        metadata: dict[str, Any] = {
            "row": number,
            "fields": {k: _plain(v) for k, v in row.items() if k not in used},
        }
        raw_title = row.get(c.title_column) if c.title_column else None
        title = clean_text(str(raw_title))[0].strip() or None if raw_title is not None else None
        body = row.get(c.text_column)
        if body is None:
            return error_document(source_id, uri, f"row {number}: {c.text_column!r} is NULL", title=title)
        if isinstance(body, bytes | bytearray | memoryview):
            body = bytes(body).decode("utf-8", "surrogateescape")
        modified = parse_timestamp(row.get(c.modified_column)) if c.modified_column else None
        return SourceDocument(
            source_id=source_id,
            uri=uri,
            media_type=media_types.TEXT,
            text=str(body),
            title=title,
            modified_at=modified,
            metadata=metadata,
        )


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a column value (kept in metadata)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
