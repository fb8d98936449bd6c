"""Metadata filters of an index query: parsed once, rendered to SQL by each backend.

A filter is a mapping of conditions that must all hold. Keys:

- ``document_id``: the chunk's document id;
- ``metadata.<key>`` (or ``metadata.<key>.<subkey>`` for nested objects): a value of
  the chunk's metadata; key segments are letters, digits, ``_`` and ``-``.

Values are strings, numbers or booleans, compared for equality (JSON equality: the
string ``"1"`` does not match the number ``1``); a non-empty list of those means "any of".
Anything else raises :class:`InvalidFilter` (HTTP 400), so a typo never silently
widens a query. :func:`sqlite_where` and :func:`postgres_where` render parsed conditions
as SQL over the chunk table aliased ``c``, with bound parameters only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aerodrome.knowledge.index.base import InvalidFilter

Scalar = str | int | float | bool
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_VALUES = 1000


@dataclass(frozen=True, slots=True)
class Condition:
    """``path`` is None for ``document_id``, else the metadata key path; ``values`` are OR-ed."""

    path: tuple[str, ...] | None
    values: tuple[Scalar, ...]


def parse_filters(filters: dict[str, Any] | None) -> list[Condition]:
    if not filters:
        return []
    if not isinstance(filters, dict):
        raise InvalidFilter("filters must be an object of field → value", param="filters")
    return [_condition(key, value) for key, value in filters.items()]


def _condition(key: str, value: Any) -> Condition:
    path: tuple[str, ...] | None
    if key == "document_id":
        path = None
    elif isinstance(key, str) and key.startswith("metadata."):
        path = tuple(key.split(".")[1:])
        if not path or not all(_SEGMENT.match(segment) for segment in path):
            raise InvalidFilter(f"invalid metadata key in filter {key!r}", param="filters")
    else:
        raise InvalidFilter(
            f"unknown filter field {key!r}: use 'document_id' or 'metadata.<key>'", param="filters"
        )
    values = tuple(value) if isinstance(value, list | tuple) else (value,)
    if not values or len(values) > _MAX_VALUES:
        raise InvalidFilter(f"filter {key!r} needs 1 to {_MAX_VALUES} values", param="filters")
    for item in values:
        if not isinstance(item, str | int | float | bool):
            raise InvalidFilter(
                f"filter {key!r}: values must be strings, numbers or booleans", param="filters"
            )
        if path is None and not isinstance(item, str):
            raise InvalidFilter("filter 'document_id' takes strings", param="filters")
    return Condition(path, values)


def sqlite_where(conditions: list[Condition]) -> tuple[str, list[Any]]:
    """SQL (``AND``-ed, over alias ``c``) for parsed filters, and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        if condition.path is None:
            clauses.append(f"c.document_id IN ({', '.join('?' * len(condition.values))})")
            params.extend(condition.values)
            continue
        path = "$" + "".join(f'."{segment}"' for segment in condition.path)
        alternatives: list[str] = []
        for value in condition.values:
            if isinstance(value, bool):
                alternatives.append(f"json_type(c.metadata, ?) = '{'true' if value else 'false'}'")
                params.append(path)
            elif isinstance(value, str):
                alternatives.append("(json_type(c.metadata, ?) = 'text' AND json_extract(c.metadata, ?) = ?)")
                params.extend([path, path, value])
            else:
                alternatives.append(
                    "(json_type(c.metadata, ?) IN ('integer', 'real') AND json_extract(c.metadata, ?) = ?)"
                )
                params.extend([path, path, value])
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(clauses), params


def postgres_where(conditions: list[Condition]) -> tuple[str, list[Any]]:
    """SQL (``AND``-ed, over alias ``c``) for parsed filters, and its parameters (JSON equality)."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        if condition.path is None:
            clauses.append("c.document_id = ANY(%s)")
            params.append(list(condition.values))
        else:
            clauses.append("(c.metadata #> %s) = ANY(%s::jsonb[])")
            params.extend([list(condition.path), [json.dumps(value) for value in condition.values]])
    return " AND ".join(clauses), params
