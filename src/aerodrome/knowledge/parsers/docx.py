"""DOCX → sections under the heading paths of Word's Heading styles, with python-docx.

Paragraphs and tables are read in body order; table rows become " | "-joined lines.
The title is the core properties' title, else a paragraph in the Title style, else
the first heading.
"""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from aerodrome.knowledge.documents import DocumentError, ParsedDocument, SourceDocument
from aerodrome.knowledge.parsers.decoding import clean_text
from aerodrome.knowledge.parsers.markdown import SectionBuilder

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    found = _HEADING_STYLE.match(name.strip())
    return int(found.group(1)) if found else None


def _table_text(table: Table) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def parse(doc: SourceDocument) -> ParsedDocument:
    """Parse a Word document."""
    if doc.content is None:
        raise DocumentError(f"{doc.source_id}: no content to parse")
    try:
        document = docx.Document(io.BytesIO(doc.content))
    except Exception as exc:  # boundary: zipfile, python-docx and lxml all raise
        raise DocumentError(f"{doc.source_id}: corrupt DOCX ({type(exc).__name__}: {exc})") from exc
    builder = SectionBuilder()
    title: str | None = (document.core_properties.title or "").strip() or None
    first_heading: str | None = None
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            builder.paragraph(_table_text(block))
            continue
        text = block.text.strip()
        style_name = (block.style.name or "") if block.style is not None else ""
        if style_name == "Title" and text:
            title = title or text
            continue
        level = _heading_level(block)
        if level is not None and text:
            first_heading = first_heading or text
            builder.heading(level, text)
        else:
            builder.paragraph(text)
    builder.flush()
    warnings: list[str] = []
    for section in builder.sections:
        section.text, fixed = clean_text(section.text)
        warnings.extend(w for w in fixed if w not in warnings)
    title = title or first_heading or doc.title
    return ParsedDocument(title=title, sections=builder.sections, warnings=warnings)
