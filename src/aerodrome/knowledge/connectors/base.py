"""The contract of a connector, and the error document it yields instead of raising.

A connector is built from its typed source config and yields one
:class:`~aerodrome.knowledge.documents.SourceDocument` per document. It never raises
for a single bad document: it yields a document with ``error`` set and goes on.

When the *whole source* fails (folder missing, SQL query failing, sitemap unreachable)
the error document carries ``metadata["source_error"] = True``: a sync must then keep
the documents it already has instead of deleting them as "removed".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from aerodrome.knowledge.documents import SourceDocument

MAX_ERROR_CHARS = 500


@runtime_checkable
class Connector(Protocol):
    """Yields the documents of one source."""

    def documents(self) -> Iterator[SourceDocument]:
        """Every document of the source, in a deterministic order; bad ones carry ``error``."""
        ...


class ConnectorFactory(Protocol):
    """What the connector registry holds: a class (or callable) with the pydantic model of its config."""

    @property
    def config_type(self) -> type[BaseModel]:
        """The pydantic model of the source config."""
        ...

    def __call__(self, config: Any) -> Connector: ...


def error_document(
    source_id: str,
    uri: str,
    error: str,
    *,
    media_type: str = "application/octet-stream",
    source_error: bool = False,
    title: str | None = None,
    modified_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> SourceDocument:
    """A document that could not be fetched, with the reason (shortened to a readable length)."""
    meta = dict(metadata or {})
    if source_error:
        meta["source_error"] = True
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 3] + "..."
    return SourceDocument(
        source_id=source_id,
        uri=uri,
        media_type=media_type,
        title=title,
        modified_at=modified_at,
        metadata=meta,
        error=error,
    )


def parse_timestamp(value: object) -> datetime | None:
    """A row's modification time from a datetime, an ISO 8601 string or a Unix timestamp (UTC when naive)."""
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
