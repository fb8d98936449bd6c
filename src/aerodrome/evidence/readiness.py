"""What the stage gates ask of the measurements: sample sizes reached, cost within budget."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from aerodrome.evidence.metrics import Scope, compute
from aerodrome.evidence.report import locked_criteria, monthly_budget, pilot_window
from aerodrome.evidence.stages import Check
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.store import current_spec

if TYPE_CHECKING:
    from aerodrome.catalog.catalog import Catalog
    from aerodrome.config import PlatformConfig
    from aerodrome.evidence.transitions import Evidence


def _spec(engine: Engine, usecase_id: str) -> UseCaseSpec | None:
    with engine.connect() as conn:
        return current_spec(conn, usecase_id)


def samples(engine: Engine, usecase_id: str) -> list[Check]:
    """Per locked criterion: has the pilot gathered its minimum samples?"""
    spec = _spec(engine, usecase_id)
    if spec is None:
        return []
    with engine.connect() as conn:
        start, end = pilot_window(conn, usecase_id)
        criteria, _, _ = locked_criteria(conn, usecase_id, spec)
    checks = []
    for c in criteria:
        seg = c.segment
        scope = Scope(
            usecase_id,
            start,
            end,
            department=seg.department if seg else None,
            cohort=seg.cohort if seg else None,
        )
        n = compute(engine, scope).values[c.metric].n
        need = c.min_samples or 1
        checks.append(Check(c.label(), n >= need, f"{c.label()}: {n} of {need} samples"))
    return checks


def cost(engine: Engine, usecase_id: str) -> Check:
    """The projected monthly cost (its upper bound) within the monthly budgets of its departments."""
    spec = _spec(engine, usecase_id)
    name = "cost within budget"
    if spec is None:
        return Check(name, False, "no spec")
    volume = spec.projected_volume.get("tasks_per_day")
    if not isinstance(volume, int | float) or volume <= 0:
        return Check(name, False, "no projected volume (projected_volume.tasks_per_day)")
    with engine.connect() as conn:
        start, end = pilot_window(conn, usecase_id)
        budget = monthly_budget(conn, spec)
    projected = compute(engine, Scope(usecase_id, start, end), tasks_per_day=float(volume)).values[
        "projected_monthly_cost_usd"
    ]
    if projected.estimate is None:
        return Check(name, False, "no measured cost yet (no runs or tasks in the pilot)")
    if budget is None:
        return Check(name, False, "its departments have no monthly budget to compare with")
    ok = projected.high <= budget
    detail = (
        f"projected ${projected.estimate:,.2f}/month (up to ${projected.high:,.2f}) against ${budget:,.2f}"
    )
    return Check(name, ok, detail)


def gate_evidence(engine: Engine, config: PlatformConfig, catalog: Callable[[], Catalog]) -> Evidence:
    """Everything the stage gates can measure: samples, cost, and the eval suite on the pinned model."""
    from aerodrome.evals.standing import readiness_check
    from aerodrome.evidence.transitions import Evidence

    return Evidence(
        samples=partial(samples, engine),
        cost=partial(cost, engine),
        evals=partial(readiness_check, engine, config, catalog),
    )
