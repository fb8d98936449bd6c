"""The nouns of ingestion, shared by connectors, parsers, chunking, quality and indexing.

Flow: a connector yields ``SourceDocument`` (raw bytes or text, with a content hash)
→ a parser turns it into a ``ParsedDocument`` (sections with headings and pages)
→ the chunker cuts ``ChunkDraft`` pieces → the embedder adds vectors → the index
stores them. A problem with one document is recorded on that document
(``error``) and never stops the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aerodrome.errors import AerodromeError


class DocumentError(AerodromeError):
    """One document could not be read or parsed (reported per document, never fatal to a sync)."""

    status = 422
    code = "document_error"
    type = "invalid_request_error"


@dataclass(slots=True)
class SourceDocument:
    """What a connector yields for one document of a source."""

    source_id: str  # the source's own id: a file's relative path, a JSONL row's _id, a URL, a SQL row id
    uri: str  # where it lives: file:///abs/path, https://..., sql://<name>/<id>
    media_type: (
        str  # text/plain, text/markdown, text/html, application/pdf, application/vnd...docx, text/csv row
    )
    content: bytes | None = None  # raw bytes to parse (files, URLs)
    text: str | None = None  # already text (rows of CSV / JSONL / SQL): no parser needed
    title: str | None = None
    modified_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the connector could not fetch it (size limit, HTTP error, unreadable file)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(self.content, self.text, self.title)


def content_hash(content: bytes | None, text: str | None, title: str | None) -> str:
    h = hashlib.sha256()
    h.update((title or "").encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    if content is not None:
        h.update(content)
    if text is not None:
        h.update(b"\x01")
        h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@dataclass(slots=True)
class Section:
    """A piece of a document that follows its structure: a heading's body, a page, a paragraph run."""

    text: str
    heading: str | None = None  # the heading path, e.g. "Leave > Parental leave"
    page: int | None = None  # 1-based page for paginated formats


@dataclass(slots=True)
class ParsedDocument:
    title: str | None
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # e.g. "invalid UTF-8 replaced", "page 3 has no text"

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)


@dataclass(slots=True)
class ChunkDraft:
    """A chunk before it has an id or a vector."""

    ordinal: int
    text: str
    heading: str | None = None
    page: int | None = None
    char_start: int = 0
    char_end: int = 0
