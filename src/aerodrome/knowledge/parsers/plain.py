"""Plain text → one section whose paragraphs are separated by blank lines (the chunker splits on them)."""

from __future__ import annotations

import re

from aerodrome.knowledge.documents import ParsedDocument, Section, SourceDocument
from aerodrome.knowledge.parsers.decoding import source_text

_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+\n")
_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n)+")


def normalize(text: str) -> str:
    """Unix newlines, no trailing spaces, exactly one blank line between paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = _TRAILING_SPACE.sub("\n", text + "\n")
    return _BLANK_RUNS.sub("\n\n", text).strip()


def parse(doc: SourceDocument) -> ParsedDocument:
    """Parse plain text (files, and rows of CSV / JSONL / SQL whose text is already set)."""
    text, warnings = source_text(doc)
    body = normalize(text)
    sections = [Section(text=body)] if body else []
    return ParsedDocument(title=doc.title, sections=sections, warnings=warnings)
