"""What a reviewer may submit: status filters, notes and edited outputs, checked field by field."""

from __future__ import annotations

from typing import Any

import orjson

from aerodrome.errors import BadRequest

OPEN: tuple[str, ...] = ("pending", "claimed")
DECIDED: tuple[str, ...] = ("approved", "edited", "rejected")
STATUSES: tuple[str, ...] = OPEN + DECIDED
MAX_NOTE_CHARS = 2000
MAX_OUTPUT_CHARS = 20000  # the feedback.correction column keeps the edited output


def parse_statuses(values: list[str] | None) -> tuple[str, ...]:
    """``status`` query values (repeated or comma-separated) → statuses; the open ones by default."""
    if not values:
        return OPEN
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in STATUSES:
                raise BadRequest(
                    f"unknown review status {part!r}; statuses are {list(STATUSES)}",
                    param="status",
                    code="invalid_value",
                )
            if part and part not in out:
                out.append(part)
    return tuple(out) or OPEN


def checked_note(note: str | None, *, required: bool) -> str | None:
    if note is not None and not isinstance(note, str):
        raise BadRequest("note must be a string", param="note", code="invalid_type")
    note = (note or "").strip() or None
    if note is None and required:
        raise BadRequest(
            "a rejection needs a note saying why", param="note", code="missing_required_parameter"
        )
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise BadRequest(
            f"note is longer than {MAX_NOTE_CHARS} characters", param="note", code="invalid_value"
        )
    return note


def edited_output(draft_output: Any, output: Any) -> str | dict[str, Any]:
    """The reviewer's output, of the same kind as the draft's (text or a JSON object)."""
    if isinstance(draft_output, dict):
        if not isinstance(output, dict) or not output:
            raise BadRequest(
                "output must be a non-empty JSON object, like the held draft",
                param="output",
                code="invalid_type",
            )
        size = len(orjson.dumps(output))
    else:
        if not isinstance(output, str) or not output.strip():
            raise BadRequest("output must be a non-empty string", param="output", code="invalid_type")
        size = len(output)
    if size > MAX_OUTPUT_CHARS:
        raise BadRequest(
            f"output is longer than {MAX_OUTPUT_CHARS} characters", param="output", code="invalid_value"
        )
    return output


def correction_text(output: str | dict[str, Any]) -> str:
    return output if isinstance(output, str) else orjson.dumps(output, option=orjson.OPT_SORT_KEYS).decode()
