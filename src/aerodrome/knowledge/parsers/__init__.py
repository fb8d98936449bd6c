"""Parsers: one per media type, each ``parse(doc: SourceDocument) -> ParsedDocument``.

A parser raises :class:`~aerodrome.knowledge.documents.DocumentError` for input it
cannot read (corrupt or encrypted PDF, broken DOCX) and records repairs as warnings
(invalid UTF-8, NUL bytes, pages without text).

Parsers are an extension point (house rule 3): the built-ins below register through
the same :class:`~aerodrome.hookspecs.Registry` as third-party ones, keyed by media
type, from the entry-point group ``aerodrome.parsers``::

    [project.entry-points."aerodrome.parsers"]
    "text/x-rst" = "mypackage.rst:parse"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from aerodrome.errors import ConfigError
from aerodrome.hookspecs import Registry
from aerodrome.knowledge.documents import DocumentError, ParsedDocument, SourceDocument
from aerodrome.knowledge.parsers import media_types

PARSERS_GROUP = "aerodrome.parsers"

Parser = Callable[[SourceDocument], ParsedDocument]


def parser_registry() -> Registry[Parser]:
    """The parsers by media type: the built-ins plus every installed ``aerodrome.parsers`` entry point."""
    from aerodrome.knowledge.parsers import docx, html, markdown, pdf, plain

    return Registry(
        PARSERS_GROUP,
        {
            media_types.PDF: pdf.parse,
            media_types.DOCX: docx.parse,
            media_types.HTML: html.parse,
            media_types.MARKDOWN: markdown.parse,
            media_types.TEXT: plain.parse,
        },
    )


def parse(doc: SourceDocument, registry: Registry[Parser] | None = None) -> ParsedDocument:
    """Parse one document with the parser of its media type.

    Raises :class:`DocumentError` when the connector already failed on it (``doc.error``),
    when no parser handles its media type, or when the parser cannot read it. Warnings
    the connector recorded (``metadata["warnings"]``) come first in the result; the
    title falls back to the source's title, then to the file name without extension.
    """
    if doc.error:
        raise DocumentError(f"{doc.source_id}: {doc.error}")
    registry = registry or parser_registry()
    media_type = doc.media_type.split(";")[0].strip().lower()
    try:
        parser = registry.get(media_type)
    except ConfigError:
        raise DocumentError(f"{doc.source_id}: no parser for media type {media_type!r}") from None
    parsed = parser(doc)
    early = doc.metadata.get("warnings")
    if isinstance(early, list) and early:
        parsed.warnings = [str(w) for w in early] + [w for w in parsed.warnings if w not in early]
    if not parsed.title:
        parsed.title = doc.title or _stem(doc.source_id)
    return parsed


parse_document = parse
"""Alias of :func:`parse` (the name the sync uses)."""


def _stem(source_id: str) -> str | None:
    stem = PurePosixPath(source_id.split("?")[0].rstrip("/")).stem
    return stem or None


__all__ = ["PARSERS_GROUP", "Parser", "parse", "parse_document", "parser_registry"]
