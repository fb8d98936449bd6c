"""What the stage gates ask of the measurements: sample sizes reached, cost within budget."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from aerodrome.evidence.metrics import SampleSizes, Scope, compute, sample_sizes
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


def samples(engine: Engine, usecase_id: str, *, known: SampleSizes | None = None) -> list[Check]:
    """Per locked criterion: has the pilot gathered its minimum samples?

    Counts are :func:`metrics.sample_sizes`: the ``n`` that :func:`metrics.compute` gives for the
    criterion's scope, read once for the whole use case and its departments (a department
    segment), once per other segment, and without bootstraps (a count needs no interval).
    ``known``: those sizes for the pilot's window and its departments, already read (by
    ``report.build_with_sizes``); used when it holds every criterion's metric."""
    spec = _spec(engine, usecase_id)
    if spec is None:
        return []
    with engine.connect() as conn:
        start, end = pilot_window(conn, usecase_id)
        criteria, _, _ = locked_criteria(conn, usecase_id, spec)
    metrics = sorted({c.metric for c in criteria})
    whole: SampleSizes | None = None
    if known is not None and all(m in known.overall for m in metrics):
        whole = known
    other: dict[str, dict[str, int]] = {}
    checks = []
    for c in criteria:
        seg = c.segment
        if (seg is None or seg.cohort is None) and whole is None:
            whole = sample_sizes(engine, Scope(usecase_id, start, end), metrics)
        if seg is None and whole is not None:
            sizes = whole.overall
        elif (
            seg is not None
            and seg.cohort is None
            and whole is not None
            and seg.department in whole.departments
        ):
            sizes = whole.departments[seg.department]
        else:
            assert seg is not None
            key = seg.describe()
            if key not in other:
                scope = Scope(usecase_id, start, end, department=seg.department, cohort=seg.cohort)
                other[key] = sample_sizes(engine, scope, metrics, refresh=whole is None and not other).overall
            sizes = other[key]
        n = sizes[c.metric]
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
