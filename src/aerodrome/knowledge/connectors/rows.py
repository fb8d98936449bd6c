"""Rows as documents: each line of a JSONL file or row of a CSV file becomes one SourceDocument.

The id, title and text fields are configurable; the defaults (``_id`` or ``id``,
``title``, ``text``) read BEIR-style corpora such as SciFact's ``corpus.jsonl`` as is.
A bad row (invalid JSON, no text field, too large) becomes an error document naming its
line; the rows around it are still read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aerodrome.knowledge.connectors.base import error_document, parse_timestamp
from aerodrome.knowledge.documents import SourceDocument
from aerodrome.knowledge.parsers import media_types
from aerodrome.knowledge.parsers.decoding import clean_text, decode_text


@dataclass(frozen=True, slots=True)
class RowFields:
    """Which fields of a row hold its id, title, text and modification time."""

    id_fields: tuple[str, ...] = ("_id", "id")
    title_field: str | None = "title"
    text_field: str = "text"
    modified_field: str | None = None

    @classmethod
    def parse(
        cls, id_field: str, title_field: str | None, text_field: str, modified_field: str | None
    ) -> RowFields:
        """From config strings; ``id_field`` lists alternatives separated by ``|`` (first present wins)."""
        ids = tuple(name.strip() for name in id_field.split("|") if name.strip())
        return cls(ids, title_field or None, text_field, modified_field or None)


@dataclass(frozen=True, slots=True)
class RowFile:
    """One CSV / JSONL file being read: where it is and what applies to every row."""

    relative: str  # POSIX path relative to the source root
    path: Path
    uri: str
    fields: RowFields
    max_row_bytes: int
    modified_at: datetime | None = None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def row_document(
    row: Mapping[str, Any], file: RowFile, line: int, warnings: list[str] | None = None
) -> SourceDocument:
    """One row → one document (or an error document when the row has no text)."""
    fields = file.fields
    raw_id = next((row[name] for name in fields.id_fields if row.get(name) not in (None, "")), None)
    source_id = clean_text(str(raw_id))[0] if raw_id is not None else f"{file.relative}#L{line}"
    uri = f"{file.uri}#L{line}"
    used = {*fields.id_fields, fields.title_field, fields.text_field, fields.modified_field}
    metadata: dict[str, Any] = {
        "file": file.relative,
        "line": line,
        "fields": {k: v for k, v in row.items() if k not in used and k is not None},
    }
    if warnings:
        metadata["warnings"] = list(warnings)
    title_value = _as_text(row.get(fields.title_field)) if fields.title_field else None
    title = clean_text(title_value)[0].strip() or None if title_value else None
    modified = parse_timestamp(row.get(fields.modified_field)) if fields.modified_field else None
    text = _as_text(row.get(fields.text_field))
    if text is None:
        return error_document(
            source_id,
            uri,
            f"row on line {line} has no {fields.text_field!r} field",
            media_type=media_types.TEXT,
            title=title,
            metadata=metadata,
        )
    return SourceDocument(
        source_id=source_id,
        uri=uri,
        media_type=media_types.TEXT,
        text=text,
        title=title,
        modified_at=modified or file.modified_at,
        metadata=metadata,
    )


def read_jsonl(file: RowFile) -> Iterator[SourceDocument]:
    """Each non-blank line of a JSONL file → one document; bad lines → error documents."""
    with file.path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            location = f"{file.relative}#L{number}"
            if len(raw) > file.max_row_bytes:
                yield error_document(
                    location,
                    f"{file.uri}#L{number}",
                    f"line {number} too large ({len(raw)} bytes; the limit is {file.max_row_bytes})",
                )
                continue
            text, warnings = decode_text(raw)
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield error_document(
                    location, f"{file.uri}#L{number}", f"invalid JSON on line {number}: {exc.msg}"
                )
                continue
            if not isinstance(row, dict):
                yield error_document(location, f"{file.uri}#L{number}", f"line {number} is not a JSON object")
                continue
            yield row_document(row, file, number, warnings)


def read_csv(file: RowFile) -> Iterator[SourceDocument]:
    """Each row of a CSV file with a header line → one document; a malformed file stops at the error."""
    with file.path.open("rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.DictReader(text)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield error_document(
                    f"{file.relative}#L{reader.line_num}",
                    f"{file.uri}#L{reader.line_num}",
                    f"CSV error on line {reader.line_num}: {exc}; the rest of the file is skipped",
                )
                return
            row.pop(None, None)  # cells beyond the header
            size = sum(len(v) for v in row.values() if isinstance(v, str))
            line = reader.line_num
            if size > file.max_row_bytes:
                limit = file.max_row_bytes
                yield error_document(
                    f"{file.relative}#L{line}",
                    f"{file.uri}#L{line}",
                    f"row on line {line} too large ({size} characters; the limit is {limit})",
                )
                continue
            yield row_document(row, file, line)
