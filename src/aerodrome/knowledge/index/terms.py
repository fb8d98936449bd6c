"""Turning arbitrary user text into full-text terms that can never be parsed as query syntax.

Both backends split the query into word terms (Unicode letters and digits), drop
duplicates, and match any of them (OR), each term quoted, so ``"foo" AND (bar`` is
just the terms ``foo``, ``and``, ``bar`` and never raises a syntax error.

Very common English function words are dropped (unless the query has nothing else):
they carry almost no BM25 weight but match nearly every chunk, which makes the OR query
rank the whole collection (SciFact: 94% of chunks per query with them, far fewer without).
PostgreSQL's ``english`` configuration drops them as well.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERMS = 64
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "for",
        "from",
        "had",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "which",
        "with",
    ]
)


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased word terms of ``query`` in order, at most :data:`MAX_TERMS`."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(query.lower()):
        seen.setdefault(match.group(0), None)
        if len(seen) >= MAX_TERMS:
            break
    content = [term for term in seen if term not in STOPWORDS]
    return content or list(seen)


def fts5_match(terms: list[str]) -> str:
    """An FTS5 MATCH expression: the quoted terms joined with OR (terms hold no quotes)."""
    return " OR ".join(f'"{term}"' for term in terms)


def websearch_text(terms: list[str]) -> str:
    """Input for PostgreSQL's ``websearch_to_tsquery``: quoted terms joined with ``or``."""
    return " or ".join(f'"{term}"' for term in terms)
