"""Media types Aerodrome parses, and how a file name or an HTTP header maps to one.

Connectors use these to label what they yield; the parser registry is keyed by them.
Rows of CSV / JSONL / SQL carry their text already and are labelled :data:`TEXT`.
"""

from __future__ import annotations

from pathlib import PurePath

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
CSV = "text/csv"
JSONL = "application/jsonl"

DOCUMENT_EXTENSIONS: dict[str, str] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
    ".text": TEXT,
}
"""One file = one document."""

ROW_EXTENSIONS: dict[str, str] = {".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL}
"""One row = one document."""

TEXTUAL = frozenset({HTML, MARKDOWN, TEXT, CSV, JSONL})
"""Media types whose bytes must look like text (a binary file with such an extension is an error)."""

_CONTENT_TYPES: dict[str, str] = {
    "application/pdf": PDF,
    DOCX: DOCX,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/plain": TEXT,
}


def for_path(path: str | PurePath) -> str | None:
    """The media type of a file from its extension, or None when Aerodrome does not read it."""
    suffix = PurePath(path).suffix.lower()
    return DOCUMENT_EXTENSIONS.get(suffix) or ROW_EXTENSIONS.get(suffix)


def for_content_type(header: str | None, url_path: str = "") -> tuple[str | None, str | None]:
    """(media type, charset) from an HTTP ``Content-Type`` header, falling back to the URL's extension."""
    charset: str | None = None
    media: str | None = None
    if header:
        parts = [p.strip() for p in header.split(";")]
        media = _CONTENT_TYPES.get(parts[0].lower())
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value:
                charset = value.strip().strip('"').lower()
        if media is None and parts[0].lower() not in ("application/octet-stream", "binary/octet-stream", ""):
            return None, charset
    if media is None and url_path:
        suffix = PurePath(url_path).suffix.lower()
        media = DOCUMENT_EXTENSIONS.get(suffix)
    return media, charset
