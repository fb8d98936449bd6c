"""HTML → sections under h1-h6 heading paths, boilerplate (script, style, nav, footer...) dropped.

Parsed with selectolax (lexbor), walked iteratively so deeply nested markup cannot
overflow the stack. The title is ``<title>``, else the first ``<h1>``.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from aerodrome.knowledge.documents import ParsedDocument, SourceDocument
from aerodrome.knowledge.parsers.decoding import decode_text, source_text
from aerodrome.knowledge.parsers.markdown import SectionBuilder

DROPPED = frozenset(
    {"script", "style", "nav", "footer", "noscript", "template", "iframe", "svg", "canvas", "object", "head"}
)
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "form", "header", "hr", "li", "main", "ol", "p", "section", "summary",
        "table", "tbody", "thead", "tfoot", "tr", "ul",
    }
)  # fmt: skip
HEADINGS = {f"h{n}": n for n in range(1, 7)}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SPACES = re.compile(r"[^\S\n]+")


def _children(node: LexborNode) -> list[LexborNode]:
    out: list[LexborNode] = []
    child = node.first_child
    while child is not None:
        out.append(child)
        child = child.next
    return out


class _Walker:
    """Turns the body's node tree into paragraphs and headings, in document order."""

    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self.parts: list[str] = []
        self.first_h1: str | None = None

    def end_block(self) -> None:
        text = _SPACES.sub(" ", "".join(self.parts))
        self.parts = []
        self.builder.paragraph("\n".join(line.strip() for line in text.split("\n") if line.strip()))

    def walk(self, root: LexborNode) -> None:
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, exiting = stack.pop()
            if exiting:
                self.end_block()
                continue
            tag = node.tag or ""
            if tag == "-text":
                self.parts.append(node.text_content or "")
            elif tag in DROPPED or tag.startswith("-"):
                continue
            elif tag in HEADINGS:
                self.end_block()
                text = node.text(deep=True, separator=" ", strip=True)
                text = " ".join(text.split())
                if HEADINGS[tag] == 1 and self.first_h1 is None and text:
                    self.first_h1 = text
                self.builder.heading(HEADINGS[tag], text)
            elif tag == "br":
                self.parts.append("\n")
            elif tag == "pre":
                self.end_block()
                raw = node.text(deep=True)
                if raw.strip():
                    self.builder.lines.extend((raw.strip("\n"), ""))
            else:
                if tag in ("td", "th"):
                    self.parts.append(" ")
                if tag in BLOCKS:
                    self.end_block()
                    stack.append((node, True))
                stack.extend((child, False) for child in reversed(_children(node)))
        self.end_block()
        self.builder.flush()


def _declared_charset(doc: SourceDocument) -> str | None:
    charset = doc.metadata.get("charset")
    if isinstance(charset, str):
        return charset
    if doc.content is not None:
        found = _META_CHARSET.search(doc.content[:4096])
        if found:
            return found.group(1).decode("ascii", "replace")
    return None


def parse(doc: SourceDocument) -> ParsedDocument:
    """Parse an HTML page or file."""
    if doc.content is not None and doc.text is None:
        text, warnings = decode_text(doc.content, _declared_charset(doc))
    else:
        text, warnings = source_text(doc)
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text(deep=True).split()) if title_node is not None else ""
    walker = _Walker()
    if tree.body is not None:
        walker.walk(tree.body)
    return ParsedDocument(
        title=title or walker.first_h1 or doc.title, sections=walker.builder.sections, warnings=warnings
    )
