"""The contract of an index backend. Both backends pass the same tests (tests/knowledge/index).

An index stores chunks with their text, their vector and the metadata needed for
citations and filters, per collection. Access control is the caller's: it passes
only the collections the principal may read, and the backend restricts the query
itself to those (inside the SQL, never by filtering results afterwards).

The tables an index creates (``knowledge_index_meta``, ``knowledge_collections``,
``knowledge_chunks`` and the backend's full-text and vector structures) are index
structures owned by the backend, not part of the platform's migrated schema: each
backend creates them with ``IF NOT EXISTS`` and records their layout version in
``knowledge_index_meta``, so the index may live in the platform's own database.

Filters (see :mod:`aerodrome.knowledge.index.filters`) are equality conditions,
all of which must hold: ``{"document_id": "a.md", "metadata.lang": "en"}``; a list
value means "any of" (``{"metadata.lang": ["en", "fr"]}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from aerodrome.errors import AerodromeError, BadRequest, NotFound


class InvalidFilter(BadRequest):
    code = "invalid_filter"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DimensionMismatch(BadRequest):
    """A vector's length differs from the collection's dims."""

    code = "dimension_mismatch"


class IndexUnavailable(AerodromeError):
    """The index server lacks something it needs (e.g. PostgreSQL without pgvector)."""

    status = 503
    code = "index_unavailable"


@dataclass(slots=True)
class IndexedChunk:
    chunk_id: str  # stable for (collection, document_id, ordinal, content): sha256-based, 32 hex
    collection: str
    document_id: str  # the source's own id (file path relative to the source, JSONL _id, URL, SQL id)
    ordinal: int
    text: str
    embedding: Sequence[float]  # empty or all zeros: no vector (the chunk is found by lexical search only)
    title: str | None = None
    uri: str = ""
    heading: str | None = None
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Hit:
    chunk_id: str
    score: float  # the ranking score of the call that produced the hit (see lexical / dense / search)
    collection: str
    document_id: str
    ordinal: int
    text: str
    title: str | None
    uri: str
    heading: str | None
    page: int | None
    metadata: dict[str, Any]
    lexical_score: float | None = None  # full-text rank, higher is better (None: not a lexical match)
    dense_score: float | None = None  # cosine similarity to the query vector, in [-1, 1]


@runtime_checkable
class IndexBackend(Protocol):
    name: str

    def ensure_collection(self, collection: str, *, dims: int, embedding_model: str) -> None:
        """Create what the collection needs; if dims or model changed, drop its vectors (re-embed)."""
        ...

    def embedding_model(self, collection: str) -> str | None: ...

    def replace_document(self, collection: str, document_id: str, chunks: Sequence[IndexedChunk]) -> None:
        """Atomically replace every chunk of one document (raises CollectionNotFound, DimensionMismatch)."""
        ...

    def replace_documents(self, collection: str, documents: Mapping[str, Sequence[IndexedChunk]]) -> None:
        """:meth:`replace_document` for several documents (``{document_id: chunks}``) in one transaction.

        All or none are written: one bad document (e.g. a DimensionMismatch) fails the whole call,
        so a caller that must keep the others writes the batch again one document at a time.
        """
        ...

    def delete_document(self, collection: str, document_id: str) -> None: ...

    def drop_collection(self, collection: str) -> None: ...

    def count(self, collection: str) -> int: ...

    def lexical(
        self, collections: Sequence[str], query: str, k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        """BM25 (or the backend's full-text rank), best first; higher score is better.

        Any user text is accepted: it is split into terms matched with OR, never parsed as syntax.
        """
        ...

    def dense(
        self,
        collections: Sequence[str],
        vector: Sequence[float],
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Hit]:
        """Cosine similarity (score in [-1, 1]), best first."""
        ...

    def similarities(
        self, collections: Sequence[str], chunk_ids: Sequence[str], vector: Sequence[float]
    ) -> dict[str, float]:
        """Cosine similarity of the given chunks (of those collections, with a vector) to ``vector``."""
        ...

    def document_texts(self, collection: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The text of each listed document that has chunks (chunks joined in order)."""
        ...

    def close(self) -> None: ...


def join_chunk_texts(rows: Iterable[tuple[str, str]], document_ids: Sequence[str]) -> dict[str, str]:
    """(document_id, chunk text) rows in chunk order → each wanted document's text (for quality reports)."""
    wanted = set(document_ids)
    texts: dict[str, list[str]] = {}
    for document_id, text in rows:
        if document_id in wanted:
            texts.setdefault(document_id, []).append(text)
    return {doc: "\n\n".join(parts) for doc, parts in texts.items()}
