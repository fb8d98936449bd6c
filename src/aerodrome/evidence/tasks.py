"""Tasks: units of business work, timed, in a group (baseline, control, treatment), from the API or a CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from aerodrome.errors import BadRequest, UnprocessableInput
from aerodrome.storage.tables import tasks, users

GROUPS = ("baseline", "control", "treatment")
MAX_DURATION_S = 30 * 24 * 3600.0
MAX_RUN_IDS = 100
MAX_CSV_ROWS = 100_000
CSV_COLUMNS = ("user", "group", "started_at", "finished_at", "duration_s", "outcome", "run_ids")


@dataclass(frozen=True, slots=True)
class TaskIn:
    usecase_id: str
    user_ref: str
    group: str
    started_at: datetime | None
    finished_at: datetime
    duration_s: float
    outcome: str | None
    run_ids: list[str]


def _time(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date-time string", param=name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} is not an ISO 8601 date-time: {value[:40]!r}", param=name) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _duration(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value) if not isinstance(value, bool) else None
    except ValueError:
        seconds = None
    if seconds is None or not 0 < seconds <= MAX_DURATION_S:
        raise BadRequest(
            f"duration_s must be a number of seconds above 0 and at most {MAX_DURATION_S:.0f}",
            param="duration_s",
        )
    return seconds


def parse_task(body: dict[str, Any], *, usecase_id: str, default_user: str, now: datetime) -> TaskIn:
    """One task from an API body or a CSV row; 400 naming the field on anything wrong."""
    group = body.get("group")
    if group not in GROUPS:
        raise BadRequest(f"group must be one of {list(GROUPS)}", param="group")
    user = body.get("user") or default_user
    if not isinstance(user, str) or len(user) > 320:
        raise BadRequest("user must be a user's email or name (at most 320 characters)", param="user")
    started = _time(body.get("started_at"), "started_at")
    finished = _time(body.get("finished_at"), "finished_at")
    duration = _duration(body.get("duration_s"))
    if duration is None:
        if started is None or finished is None:
            raise BadRequest("give duration_s, or started_at and finished_at", param="duration_s")
        duration = (finished - started).total_seconds()
        if not 0 < duration <= MAX_DURATION_S:
            raise BadRequest("finished_at must be after started_at, within 30 days", param="finished_at")
    if finished is None:
        finished = started + timedelta(seconds=duration) if started is not None else now
    if started is None:
        started = finished - timedelta(seconds=duration)
    if finished > now + timedelta(minutes=5):
        raise BadRequest("finished_at is in the future", param="finished_at")
    outcome = body.get("outcome")
    if outcome is not None and (not isinstance(outcome, str) or len(outcome) > 64):
        raise BadRequest("outcome must be a short text (at most 64 characters)", param="outcome")
    run_ids = body.get("run_ids") or []
    if isinstance(run_ids, str):
        run_ids = [r for r in run_ids.replace(";", " ").split() if r]
    if (
        not isinstance(run_ids, list)
        or len(run_ids) > MAX_RUN_IDS
        or not all(isinstance(r, str) for r in run_ids)
    ):
        raise BadRequest(f"run_ids must be a list of at most {MAX_RUN_IDS} run ids", param="run_ids")
    return TaskIn(usecase_id, user, group, started, finished, duration, outcome or None, run_ids)


def _departments_of(engine: Engine, refs: set[str]) -> dict[str, str]:
    if not refs:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(users.c.email, users.c.department_id).where(users.c.email.in_(refs))).all()
    return {r[0]: r[1] for r in rows}


def store_tasks(
    engine: Engine, items: list[TaskIn], *, source: str, actor: str, fallback_department: str | None
) -> list[str]:
    """Insert all of them in one transaction; returns their ids."""
    departments = _departments_of(engine, {t.user_ref for t in items})
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "id": os.urandom(16).hex(),
            "usecase_id": t.usecase_id,
            "department_id": departments.get(t.user_ref, fallback_department),
            "user_ref": t.user_ref,
            "group": t.group,
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "duration_s": t.duration_s,
            "outcome": t.outcome,
            "run_ids": t.run_ids,
            "source": source,
            "created_by": actor,
            "created_at": now,
        }
        for t in items
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(tasks.insert(), rows)
    return [str(r["id"]) for r in rows]


def parse_csv(text: str, *, usecase_id: str, default_user: str, now: datetime) -> list[TaskIn]:
    """Every row or none: 422 listing the rows that are wrong (line numbers as in the file)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if not header or "group" not in header or unknown:
        raise UnprocessableInput(
            f"the CSV header must name columns among {list(CSV_COLUMNS)} including group"
            + (f"; unknown: {unknown}" if unknown else ""),
            param="csv",
            code="invalid_csv",
        )
    found: list[TaskIn] = []
    problems: list[str] = []
    for row in reader:
        if len(found) + len(problems) >= MAX_CSV_ROWS:
            raise UnprocessableInput(
                f"at most {MAX_CSV_ROWS} rows per import", param="csv", code="invalid_csv"
            )
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            found.append(parse_task(clean, usecase_id=usecase_id, default_user=default_user, now=now))
        except BadRequest as exc:
            problems.append(f"line {reader.line_num}: {exc.param}: {exc.message}")
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise UnprocessableInput(
            f"{len(problems)} row(s) are wrong, nothing imported: {shown}", param="csv", code="invalid_csv"
        )
    if not found:
        raise UnprocessableInput("the CSV has no rows", param="csv", code="invalid_csv")
    return found


def list_tasks(
    engine: Engine, usecase_id: str, *, group: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    query = select(tasks).where(tasks.c.usecase_id == usecase_id)
    if group is not None:
        query = query.where(tasks.c.group == group)
    with engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(query.order_by(tasks.c.finished_at.desc()).limit(limit)).mappings()
        ]
