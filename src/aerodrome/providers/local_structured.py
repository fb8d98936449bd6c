"""Structured extraction: the local engine's answer to ``response_format: json_schema``.

What it does: for each property of the schema's top-level object it builds a query from
the property's name, title and description, finds the best-supported sentence of the
request's text (the same term scoring as :mod:`aerodrome.providers.local_extractive`),
and takes a value of the property's type from that sentence: a number for integers and
numbers (``30`` from "30 days' notice"), an ISO date for date strings, one of the
values for enums, names for arrays of strings ("between Acme Corp and Globex Ltd"),
``false`` for booleans when the sentence negates, else ``true``; plain strings get the
sentence itself (or the phrase after "of" / ":" for short facts like governing law).

What it does not do: it invents nothing. A property without support is left out, so a
schema that requires it fails validation and the caller's repair / fallback path runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from aerodrome.providers.local_extractive import Passage, message_text, rank, stem, terms

_WORDS = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "sixty": 60, "ninety": 90,
}  # fmt: skip
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
         "november", "december"],
        1,
    )
}  # fmt: skip
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_LONG_DATE = re.compile(
    r"\b(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?([A-Z][a-z]+)\s+(?:(\d{1,2})(?:st|nd|rd|th)?,?\s+)?(\d{4})\b"
)
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|without|shall not|does not|will not)\b", re.IGNORECASE)
_NAME = re.compile(
    r"\b((?:[A-Z][\w&'-]*\.?)(?:\s+(?:[A-Z][\w&'-]*\.?|&|of|and))*?"
    r"(?:\s+(?:Inc|Ltd|LLC|GmbH|Corp|Corporation|Company|Co|plc|SA|AG|BV|LLP)\.?))"
)
_BETWEEN = re.compile(r"\bbetween\s+(.+?)\s+and\s+(.+?)(?:\s*\(|,|\.\s|\.$|;)", re.IGNORECASE)
_AFTER_OF = re.compile(r"\b(?:laws? of|courts? of|under)\s+(?:the\s+)?(.+?)(?:[,.;]|$)", re.IGNORECASE)


def _query(name: str, spec: dict[str, Any]) -> str:
    words = re.sub(r"[_\-]+|(?<=[a-z])(?=[A-Z])", " ", name)
    return " ".join(str(x) for x in (words, spec.get("title") or "", spec.get("description") or "") if x)


def _first(passages: list[Passage], query: str, take: Callable[[str], Any]) -> Any:
    """The value ``take`` finds in the best-supported sentence that has one (None when none has)."""
    for _score, _support, sentence in rank(passages, query):
        value = take(sentence.text)
        if value is not None:
            return value
    return None


def _number(text: str, integer: bool, query: str) -> int | float | None:
    """The number written nearest to a word of the query ("24" in "... 1 March ... 24 months")."""
    anchors = [m.start() for m in _WORDS.finditer(text) if stem(m.group().lower()) in set(terms(query))]
    found: list[tuple[int, int | float]] = []
    for m in _NUMBER.finditer(text):
        whole = int(m.group(1).replace(",", ""))
        value: int | float = float(f"{whole}.{m.group(2)}") if m.group(2) and not integer else whole
        found.append((m.start(), value))
    for m in _WORDS.finditer(text):
        if m.group().lower() in _WORD_NUMBERS:
            found.append((m.start(), _WORD_NUMBERS[m.group().lower()]))
    if not found:
        return None
    if not anchors:
        return min(found)[1]
    return min(found, key=lambda f: (min(abs(f[0] - a) for a in anchors), f[0]))[1]


def _date(text: str) -> str | None:
    m = _ISO_DATE.search(text)
    if m is not None:
        return m.group(0)
    for m in _LONG_DATE.finditer(text):
        month = _MONTHS.get(m.group(2).lower())
        day = m.group(1) or m.group(3)
        if month is None or day is None:
            continue
        try:
            return date(int(m.group(4)), month, int(day)).isoformat()
        except ValueError:
            continue
    return None


def _names(text: str) -> list[str]:
    between = _BETWEEN.search(text)
    if between is not None:
        return [part.strip(" \"'") for part in between.groups() if part.strip()]
    return list(dict.fromkeys(m.group(1).strip() for m in _NAME.finditer(text)))


def _short(sentence: str) -> str:
    m = _AFTER_OF.search(sentence)
    if m is not None and len(m.group(1).split()) <= 8:
        return m.group(1).strip()
    return sentence.strip()


def _value(name: str, spec: dict[str, Any], passages: list[Passage]) -> Any:
    kind = spec.get("type")
    query = _query(name, spec)
    if kind in ("integer", "number"):
        return _first(passages, query, lambda text: _number(text, kind == "integer", query))
    if kind == "boolean":
        return _first(passages, query, lambda text: not _NEGATION.search(text))
    if kind == "array":
        if (spec.get("items") or {}).get("type", "string") != "string":
            return None
        return _first(passages, query, lambda text: _names(text) or None)
    if kind not in ("string", None):
        return None
    if "enum" in spec:
        options = [o for o in spec["enum"] if isinstance(o, str)]
        return _first(
            passages, query, lambda text: next((o for o in options if o.lower() in text.lower()), None)
        )
    if spec.get("format") == "date" or "date" in name.lower():
        return _first(passages, query, _date)
    return _first(passages, query, _short)


def extract(messages: list[object], schema: dict[str, Any]) -> str:
    """The JSON text of an object built from the last user message; properties without support are left out.

    Instructions belong in the system message: they are not searched (they would match the queries).
    """
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = message_text(users[-1].get("content")) if users else ""
    passages = [Passage(None, text)] if text.strip() else []
    out: dict[str, Any] = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict):
        for name, spec in properties.items():
            if isinstance(spec, dict):
                value = _value(name, spec, passages)
                if value is not None:
                    out[name] = value
    return orjson.dumps(out).decode()


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of an OpenAI ``response_format`` (``json_schema``), or ``{}`` for ``json_object``."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {}
    if fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema") or {}
        schema = inner.get("schema") if isinstance(inner, dict) else None
        return schema if isinstance(schema, dict) else {}
    return None
