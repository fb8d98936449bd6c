"""Markdown → sections under heading paths ("Leave > Parental leave").

ATX (``## Title``) and setext (``Title`` over ``===`` / ``---``) headings open sections;
lines inside fenced code blocks are never headings. A YAML front matter block is
dropped, its ``title:`` kept (read with a regex: config.py is the only YAML reader).
"""

from __future__ import annotations

import re

from aerodrome.knowledge.documents import ParsedDocument, Section, SourceDocument
from aerodrome.knowledge.parsers.decoding import source_text
from aerodrome.knowledge.parsers.plain import normalize

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FM_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def heading_path(stack: list[tuple[int, str]]) -> str | None:
    """The " > "-joined heading path of an open-heading stack, or None at the top of the document."""
    return " > ".join(text for _, text in stack) or None


class SectionBuilder:
    """Collects body lines and cuts a section each time a heading opens."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.first_h1: str | None = None

    def flush(self) -> None:
        """Close the open section (dropped if it has no text)."""
        body = normalize("\n".join(self.lines))
        if body:
            self.sections.append(Section(text=body, heading=heading_path(self.stack)))
        self.lines = []

    def paragraph(self, text: str) -> None:
        """Add one paragraph of body text to the open section."""
        if text.strip():
            self.lines.extend((text, ""))

    def heading(self, level: int, text: str) -> None:
        """Close the open section and open one under this heading (level 1 = top)."""
        self.flush()
        text = text.strip()
        if not text:
            return
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))


def parse_markdown(text: str) -> tuple[str | None, list[Section]]:
    """(title, sections) of a Markdown text."""
    title: str | None = None
    front = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if front:
        found = _FM_TITLE.search(front.group(1))
        if found:
            title = found.group(1).strip().strip("\"'") or None
        text = text[front.end() :]
    builder = SectionBuilder()
    fence: str | None = None
    for line in text.split("\n"):
        fence_match = _FENCE.match(line)
        if fence is not None:
            closing = fence_match.group(1) if fence_match else ""
            if closing[:1] == fence[0] and len(closing) >= len(fence):
                fence = None
            builder.lines.append(line)
            continue
        if fence_match:
            fence = fence_match.group(1)
            builder.lines.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            builder.heading(len(atx.group(1)), atx.group(2) or "")
            continue
        setext = _SETEXT.match(line)
        if setext and builder.lines and builder.lines[-1].strip() and not _is_list_item(builder.lines[-1]):
            heading_text = builder.lines.pop()
            builder.heading(1 if setext.group(1)[0] == "=" else 2, heading_text)
            continue
        builder.lines.append(line)
    builder.flush()
    return title or builder.first_h1, builder.sections


def _is_list_item(line: str) -> bool:
    return bool(re.match(r"^\s*(?:[-*+]|\d+[.)])\s", line))


def parse(doc: SourceDocument) -> ParsedDocument:
    """Parse a Markdown document; the title is the front matter's, else the first H1, else the source's."""
    text, warnings = source_text(doc)
    title, sections = parse_markdown(text)
    return ParsedDocument(title=title or doc.title, sections=sections, warnings=warnings)
