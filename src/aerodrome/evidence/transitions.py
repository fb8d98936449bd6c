"""Moving a use case between stages: the gate checked, the transition stored and audited, criteria locked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from aerodrome.audit import trail
from aerodrome.errors import Conflict
from aerodrome.evidence.criteria import lock_hash
from aerodrome.evidence.stages import LIVE_STAGES, Check, GateContext, gate_checks
from aerodrome.storage.tables import (
    criteria_locks,
    proposals,
    usecase_transitions,
    usecases,
)
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.store import UseCaseNotFound, current_spec


class GateRefused(Conflict):
    """409 with every requirement that does not hold in ``error.missing``."""

    code = "gate_refused"

    def __init__(self, usecase_id: str, to_stage: str, checks: list[Check]) -> None:
        missing = [c for c in checks if not c.ok]
        summary = "; ".join(f"{c.requirement}: {c.detail}" if c.detail else c.requirement for c in missing)
        super().__init__(f"{usecase_id} cannot move to {to_stage}: {summary}", param="to")
        self.checks = checks

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["error"]["missing"] = [c.to_dict() for c in self.checks if not c.ok]
        data["error"]["checks"] = [c.to_dict() for c in self.checks]
        return data


@dataclass(frozen=True, slots=True)
class Evidence:
    """Checks that need metrics, evaluations or budgets, provided by the caller (None: not available)."""

    samples: Callable[[str], list[Check]] | None = None
    evals: Callable[[str], Check] | None = None
    cost: Callable[[str], Check] | None = None


def _locked(spec: UseCaseSpec) -> tuple[list[dict[str, Any]], str]:
    """The criteria as stored in a lock, and their hash (evidence.criteria.lock_hash)."""
    criteria = spec.success_criteria
    return [c.model_dump(mode="json", exclude_defaults=True) for c in criteria], lock_hash(criteria)


def _row(conn: Connection, usecase_id: str) -> dict[str, Any]:
    query = select(usecases).where(usecases.c.id == usecase_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # one transition at a time per use case
    row = conn.execute(query).mappings().first()
    if row is None or row["status"] != "active":
        raise UseCaseNotFound(f"no use case {usecase_id!r}")
    return dict(row)


def _last(conn: Connection, usecase_id: str, **where: Any) -> dict[str, Any] | None:
    query = select(usecase_transitions).where(usecase_transitions.c.usecase_id == usecase_id)
    for name, value in where.items():
        query = query.where(usecase_transitions.c[name] == value)
    row = conn.execute(query.order_by(usecase_transitions.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def context(
    conn: Connection, usecase_id: str, evidence: Evidence, now: datetime
) -> tuple[dict[str, Any], GateContext]:
    row = _row(conn, usecase_id)
    pilot = _last(conn, usecase_id, to_stage="pilot")
    redesign = _last(conn, usecase_id, decision="redesign")
    problem = (
        conn.execute(select(proposals.c.problem).where(proposals.c.usecase_id == usecase_id)).scalar() or ""
    )
    return row, GateContext(
        stage=row["stage"],
        spec=current_spec(conn, usecase_id),
        spec_version=row["current_version"],
        now=now,
        problem=problem,
        pilot_started_at=pilot["at"] if pilot else None,
        last_redesign_version=redesign["spec_version"] if redesign else None,
        samples=partial(evidence.samples, usecase_id) if evidence.samples else None,
        evals=partial(evidence.evals, usecase_id) if evidence.evals else None,
        cost=partial(evidence.cost, usecase_id) if evidence.cost else None,
    )


def advance(
    engine: Engine,
    usecase_id: str,
    to_stage: str,
    *,
    actor: str,
    rationale: str = "",
    decision: str | None = None,
    evidence: Evidence = Evidence(),
    dry_run: bool = False,
) -> dict[str, Any]:
    """Move the use case if the gate opens (409 ``gate_refused`` listing what is missing otherwise)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row, ctx = context(conn, usecase_id, evidence, now)
        checks = gate_checks(to_stage, ctx, decision)
        result = {
            "usecase_id": usecase_id,
            "from": row["stage"],
            "to": to_stage,
            "checks": [c.to_dict() for c in checks],
            "allowed": all(c.ok for c in checks),
        }
        if dry_run:
            return result
        if not result["allowed"]:
            raise GateRefused(usecase_id, to_stage, checks)
        conn.execute(
            update(usecases).where(usecases.c.id == usecase_id).values(stage=to_stage, stage_changed_at=now)
        )
        conn.execute(
            usecase_transitions.insert().values(
                usecase_id=usecase_id,
                from_stage=row["stage"],
                to_stage=to_stage,
                decision=decision,
                rationale=rationale,
                checks=result["checks"],
                spec_version=row["current_version"],
                actor=actor,
                at=now,
            )
        )
        details: dict[str, Any] = {
            "from": row["stage"],
            "to": to_stage,
            "decision": decision,
            "rationale": rationale,
        }
        if to_stage == "pilot" and ctx.spec is not None:
            criteria, digest = _locked(ctx.spec)
            conn.execute(
                criteria_locks.insert().values(
                    usecase_id=usecase_id,
                    kind="lock",
                    criteria=criteria,
                    criteria_hash=digest,
                    spec_version=row["current_version"],
                    reason="pilot started",
                    actor=actor,
                    at=now,
                )
            )
            details["criteria_hash"] = digest
        trail.record(
            conn,
            actor=actor,
            action="usecase.stage",
            object_type="usecase",
            object_id=usecase_id,
            details=details,
        )
    return {**result, "stage": to_stage, "at": now}


def note_criteria_change(
    conn: Connection, usecase_id: str, spec: UseCaseSpec, version: int, *, actor: str
) -> bool:
    """Inside a new version's transaction: criteria changed after the lock become an amendment (flagged)."""
    stage = conn.execute(select(usecases.c.stage).where(usecases.c.id == usecase_id)).scalar()
    if stage not in LIVE_STAGES:
        return False
    latest = conn.execute(
        select(criteria_locks.c.criteria_hash)
        .where(criteria_locks.c.usecase_id == usecase_id)
        .order_by(criteria_locks.c.id.desc())
        .limit(1)
    ).scalar()
    criteria, digest = _locked(spec)
    if latest is None or latest == digest:
        return False
    conn.execute(
        criteria_locks.insert().values(
            usecase_id=usecase_id,
            kind="amendment",
            criteria=criteria,
            criteria_hash=digest,
            spec_version=version,
            reason=f"criteria changed in version {version} after the pilot started",
            actor=actor,
            at=datetime.now(UTC),
        )
    )
    trail.record(
        conn,
        actor=actor,
        action="usecase.criteria_amended",
        object_type="usecase",
        object_id=usecase_id,
        details={"version": version, "criteria_hash": digest},
    )
    return True


def history(engine: Engine, usecase_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        moves = conn.execute(
            select(usecase_transitions)
            .where(usecase_transitions.c.usecase_id == usecase_id)
            .order_by(usecase_transitions.c.id)
        ).mappings()
        locks = conn.execute(
            select(criteria_locks)
            .where(criteria_locks.c.usecase_id == usecase_id)
            .order_by(criteria_locks.c.id)
        ).mappings()
        return {"transitions": [dict(m) for m in moves], "criteria": [dict(lock) for lock in locks]}
