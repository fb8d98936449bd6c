"""The baseline a use case's live traffic is compared with.

An explicitly recorded baseline (``PUT /api/usecases/{id}/drift/baseline``: a start and an end)
wins; otherwise the use case's pilot window (from the pilot transition to the decision, or to now
while the pilot runs). The baseline always ends where the tested window starts, so the two never
overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select

from aerodrome.audit import trail
from aerodrome.errors import BadRequest
from aerodrome.evidence.report import pilot_window
from aerodrome.storage.tables import drift_baselines


@dataclass(frozen=True, slots=True)
class Baseline:
    start: datetime
    end: datetime
    source: Literal["recorded", "pilot"]

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}


def baseline_for(engine: Engine, usecase_id: str, window_start: datetime) -> Baseline | None:
    """The use case's baseline, cut at ``window_start``; None when it has none (or none before it)."""
    with engine.connect() as conn:
        row = conn.execute(select(drift_baselines).where(drift_baselines.c.usecase_id == usecase_id)).first()
        if row is not None:
            start, end, source = row.start, row.end, "recorded"
        else:
            start, end = pilot_window(conn, usecase_id)
            source = "pilot"
    if start is None:
        return None
    end = min(end or window_start, window_start)
    if end <= start:
        return None
    return Baseline(start, end, source)  # type: ignore[arg-type]


def record_baseline(
    engine: Engine, usecase_id: str, start: datetime, end: datetime, *, actor: str
) -> Baseline:
    """Record (or replace) the use case's baseline window; an audit event says who and when."""
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("start and end need a time zone (e.g. 2026-11-01T00:00:00Z)", param="start")
    if end <= start:
        raise BadRequest("the baseline's end must be after its start", param="end")
    now = datetime.now(UTC)
    if end > now:
        raise BadRequest("the baseline's end must not be in the future", param="end")
    values = {"start": start, "end": end, "recorded_by": actor, "recorded_at": now}
    with engine.begin() as conn:
        existing = conn.execute(
            select(drift_baselines.c.usecase_id).where(drift_baselines.c.usecase_id == usecase_id)
        ).first()
        if existing is None:
            conn.execute(drift_baselines.insert().values(usecase_id=usecase_id, **values))
        else:
            conn.execute(
                drift_baselines.update().where(drift_baselines.c.usecase_id == usecase_id).values(**values)
            )
        trail.record(
            conn,
            actor=actor,
            action="drift.baseline_recorded",
            object_type="usecase",
            object_id=usecase_id,
            details={"start": start.isoformat(), "end": end.isoformat()},
        )
    return Baseline(start, end, "recorded")
