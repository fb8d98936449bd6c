"""Which retrieved passages an answer cites (``[n]`` markers), and the numbered context the model reads."""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"\[(\d{1,3})\]")
SNIPPET_CHARS = 300


def _cite(passage: dict[str, Any], marker: int) -> dict[str, Any]:
    text = passage.get("text") or ""
    source = passage.get("source") or {}
    return {
        "marker": f"[{marker}]",
        "document_id": passage.get("document_id"),
        "chunk_id": passage.get("chunk_id"),
        "collection": passage.get("collection"),
        "title": passage.get("title"),
        "uri": source.get("uri"),
        "page": source.get("page"),
        "section": source.get("section"),
        "score": passage.get("score"),
        "snippet": text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…",
    }


def citations_for(answer: str, passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages the answer cites by ``[n]``; all passages given when it cites none."""
    cited = []
    for m in _MARKER.finditer(answer):
        n = int(m.group(1))
        if 1 <= n <= len(passages) and n not in cited:
            cited.append(n)
    numbers = cited or list(range(1, len(passages) + 1))
    return [_cite(passages[n - 1], n) for n in numbers]


def context_text(passages: list[dict[str, Any]]) -> str:
    return "\n\n".join(f"[{i}] {p.get('text') or ''}".strip() for i, p in enumerate(passages, 1))
