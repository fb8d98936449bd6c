"""Cut a parsed document into chunks that follow its structure, with overlap.

Rules, in order:

1. A chunk never crosses a section (heading or page) boundary, except that small
   consecutive sections on the same page and under the same parent heading are merged
   while the result fits in ``max_chars`` and one side is under ``min_chars`` (an FAQ's
   short answers end up together under the FAQ's heading).
2. A section longer than ``max_chars`` is split on paragraph boundaries, then sentence
   boundaries, then whitespace, and only as a last resort inside a word.
3. Consecutive chunks of one section overlap by up to ``overlap_chars``, starting on a
   word boundary.

``char_start`` / ``char_end`` are offsets into ``ParsedDocument.text``, and
``parsed.text[c.char_start:c.char_end] == c.text``. The result depends on nothing but
the input and the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aerodrome.knowledge.documents import ChunkDraft, ParsedDocument

_SEPARATORS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"(?<=[.!?;:])[\"'\u201d\u2019)\]]*\s+"),  # sentences
    re.compile(r"\s+"),  # words
)
_WHITESPACE = re.compile(r"\s+")


class ChunkingConfig(BaseModel):
    """How a collection cuts its documents (embedded in the collection config)."""

    model_config = ConfigDict(extra="forbid")

    max_chars: int = Field(default=1200, ge=50, le=100_000, description="longest chunk, in characters")
    overlap_chars: int = Field(
        default=150, ge=0, description="characters repeated from the previous chunk of a section"
    )
    min_chars: int = Field(
        default=200, ge=0, description="sections shorter than this merge with their neighbours"
    )

    @model_validator(mode="after")
    def _overlap_below_half(self) -> ChunkingConfig:
        if self.overlap_chars * 2 > self.max_chars:
            raise ValueError("overlap_chars must be at most half of max_chars")
        return self


@dataclass(slots=True)
class _Span:
    """A run of ``parsed.text`` that becomes one or more chunks."""

    start: int
    end: int
    heading: str | None
    page: int | None
    headings: list[str | None]


def _parent(heading: str | None) -> str | None:
    if heading is None or " > " not in heading:
        return None
    return heading.rsplit(" > ", 1)[0]


def _under(heading: str | None, ancestor: str | None) -> bool:
    """Whether ``heading`` is ``ancestor`` or lies below it."""
    if ancestor is None:
        return True
    return heading is not None and (heading == ancestor or heading.startswith(ancestor + " > "))


def _common_heading(headings: list[str | None]) -> str | None:
    first = headings[0]
    if first is None or any(h is None for h in headings):
        return first
    parts = [h.split(" > ") for h in headings if h is not None]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if any(p != level[0] for p in level):
            break
        common.append(level[0])
    return " > ".join(common) if common else first


def _spans(parsed: ParsedDocument, max_chars: int, min_chars: int) -> list[_Span]:
    """The sections as offsets into ``parsed.text``, small neighbours merged."""
    spans: list[_Span] = []
    offset = 0
    for section in parsed.sections:
        if not section.text:
            continue
        start, end = offset, offset + len(section.text)
        offset = end + 2  # ParsedDocument.text joins sections with a blank line
        if not section.text.strip():
            continue
        last = spans[-1] if spans else None
        if (
            last is not None
            and last.page == section.page
            and end - last.start <= max_chars
            and (last.end - last.start < min_chars or end - start < min_chars)
            and (
                _parent(section.heading) == _parent(last.headings[0])
                or _under(section.heading, last.headings[0])
            )
        ):
            last.end = end
            last.headings.append(section.heading)
            last.heading = _common_heading(last.headings)
            continue
        spans.append(_Span(start, end, section.heading, section.page, [section.heading]))
    return spans


def _units(text: str, start: int, end: int, max_chars: int, level: int = 0) -> list[tuple[int, int]]:
    """Pieces of ``text[start:end]`` no longer than ``max_chars``, cut at the coarsest boundary that works."""
    if end - start <= max_chars:
        return [(start, end)]
    if level >= len(_SEPARATORS):
        return [(i, min(i + max_chars, end)) for i in range(start, end, max_chars)]
    pieces: list[tuple[int, int]] = []
    cursor = start
    for match in _SEPARATORS[level].finditer(text, start, end):
        if match.start() > cursor:
            pieces.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end:
        pieces.append((cursor, end))
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        out.extend(_units(text, a, b, max_chars, level + 1))
    return out


def _overlap_start(
    text: str, prev_start: int, prev_end: int, next_end: int, max_chars: int, overlap: int
) -> int:
    """Where the next chunk starts: up to ``overlap`` characters back, on a word boundary, still fitting."""
    earliest = max(prev_end - overlap, next_end - max_chars, prev_start + 1)
    if overlap <= 0 or earliest >= prev_end:
        return prev_end
    if earliest > 0 and not text[earliest - 1].isspace():
        gap = _WHITESPACE.search(text, earliest, prev_end)
        if gap is None:
            return prev_end
        earliest = gap.end()
    return earliest if earliest < prev_end else prev_end


def _split(text: str, span: _Span, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) windows over a span: packed units, with overlap between windows."""
    units = _units(text, span.start, span.end, max_chars)
    windows: list[tuple[int, int]] = []
    i = 0
    start = units[0][0]
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1][1] - start <= max_chars:
            j += 1
        end = units[j][1]
        windows.append((start, end))
        if j + 1 >= len(units):
            break
        next_start, next_end = units[j + 1]
        start = _overlap_start(text, start, end, next_end, max_chars, overlap)
        if start >= end:
            start = next_start
        i = j + 1
    return windows


def chunk(
    parsed: ParsedDocument, *, max_chars: int = 1200, overlap_chars: int = 150, min_chars: int = 200
) -> list[ChunkDraft]:
    """The chunks of a parsed document (see the module doc for the rules)."""
    config = ChunkingConfig(max_chars=max_chars, overlap_chars=overlap_chars, min_chars=min_chars)
    text = parsed.text
    drafts: list[ChunkDraft] = []
    for span in _spans(parsed, config.max_chars, config.min_chars):
        for a, b in _split(text, span, config.max_chars, config.overlap_chars):
            piece = text[a:b]
            stripped = piece.strip()
            if not stripped:
                continue
            a += len(piece) - len(piece.lstrip())
            b = a + len(stripped)
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    text=stripped,
                    heading=span.heading,
                    page=span.page,
                    char_start=a,
                    char_end=b,
                )
            )
    return drafts


def chunk_with(parsed: ParsedDocument, config: ChunkingConfig) -> list[ChunkDraft]:
    """:func:`chunk` with a collection's :class:`ChunkingConfig`."""
    return chunk(
        parsed, max_chars=config.max_chars, overlap_chars=config.overlap_chars, min_chars=config.min_chars
    )
