"""The pilot report: each criterion's verdict with its evidence, red flags, failure modes, cost, adoption,
and a go / redesign / stop recommendation; as JSON, Markdown or HTML.

The verdicts use the criteria locked when the pilot started (amendments are red flags), over the
pilot's window (its start to the decision, or now).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine, String, cast, func, select

from aerodrome.errors import BadRequest
from aerodrome.evals import standing
from aerodrome.evidence import assessment
from aerodrome.evidence.criteria import METRICS, Criterion
from aerodrome.evidence.metrics import (
    BOOTSTRAPPED,
    VOLUME_DEPENDENT,
    MetricSet,
    SampleSizes,
    Scope,
    compute,
    compute_with_departments,
)
from aerodrome.evidence.stats import Interval
from aerodrome.storage.tables import (
    criteria_locks,
    departments,
    feedback,
    review_items,
    tasks,
    usecase_transitions,
    users,
)
from aerodrome.usecases import store
from aerodrome.usecases.spec import UseCaseSpec

FORMATS = ("json", "md", "html")
EXAMPLES = 3
_TEMPLATES = Path(__file__).parent / "templates"


def _first(conn: Any, query: Any) -> dict[str, Any] | None:
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def pilot_window(conn: Any, usecase_id: str) -> tuple[datetime | None, datetime | None]:
    t = usecase_transitions
    pilot = _first(
        conn,
        select(t.c.at)
        .where(t.c.usecase_id == usecase_id, t.c.to_stage == "pilot")
        .order_by(t.c.id.desc())
        .limit(1),
    )
    if pilot is None:
        return None, None
    decided = _first(
        conn,
        select(t.c.at)
        .where(t.c.usecase_id == usecase_id, t.c.from_stage == "pilot", t.c.id > 0, t.c.at >= pilot["at"])
        .order_by(t.c.id)
        .limit(1),
    )
    return pilot["at"], decided["at"] if decided else None


def locked_criteria(conn: Any, usecase_id: str, spec: UseCaseSpec) -> tuple[list[Criterion], int, bool]:
    """The locked criteria (or the spec's when no pilot started), the number of amendments, locked?"""
    rows = (
        conn.execute(
            select(criteria_locks)
            .where(criteria_locks.c.usecase_id == usecase_id)
            .order_by(criteria_locks.c.id)
        )
        .mappings()
        .all()
    )
    locks = [r for r in rows if r["kind"] == "lock"]
    if not locks:
        return list(spec.success_criteria), 0, False
    last_lock = locks[-1]
    amendments = sum(1 for r in rows if r["kind"] == "amendment" and r["id"] > last_lock["id"])
    return [Criterion.model_validate(c) for c in last_lock["criteria"]], amendments, True


def _failure_modes(
    conn: Any, usecase_id: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Feedback flags with examples, why outputs were held, review outcomes, rejections and corrections.

    Counted in SQL by distinct value (flag and reason lists repeat a handful of combinations), so
    the cost does not grow with the number of rows in Python.
    """
    f, r = feedback, review_items
    fwhere = [f.c.usecase_id == usecase_id, cast(f.c.flags, String) != "[]"]
    rwhere = [r.c.usecase_id == usecase_id]
    if start is not None:
        fwhere.append(f.c.created_at >= start)
        rwhere.append(r.c.created_at >= start)
    if end is not None:
        fwhere.append(f.c.created_at < end)
        rwhere.append(r.c.created_at < end)
    flags: Counter[str] = Counter()
    flag_text = cast(f.c.flags, String)
    for text, count in conn.execute(select(flag_text, func.count()).where(*fwhere).group_by(flag_text)):
        for flag in orjson.loads(text) if text else []:
            flags[flag] += int(count)
    examples: dict[str, list[dict[str, Any]]] = {}
    for flag in flags:
        rows = conn.execute(
            select(f.c.run_id, f.c.comment, f.c.correction)
            .where(
                *fwhere,
                flag_text.contains(f'"{flag}"'),
                (f.c.comment.is_not(None)) | (f.c.correction.is_not(None)),
            )
            .order_by(f.c.created_at.desc())
            .limit(EXAMPLES)
        )
        examples[flag] = [
            {"run_id": run_id, "comment": (comment or "")[:300], "correction": (correction or "")[:300]}
            for run_id, comment, correction in rows
        ]
    reasons: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    reason_text = cast(r.c.reasons, String)
    grouped = select(reason_text, r.c.status, func.count()).where(*rwhere).group_by(reason_text, r.c.status)
    for text, status, count in conn.execute(grouped):
        outcomes[status] += int(count)
        for reason in orjson.loads(text) if text else []:
            reasons[reason] += int(count)

    def latest(status: str) -> list[Any]:
        query = select(r.c.run_id, r.c.note, r.c.final).where(
            *rwhere,
            r.c.status == status,
            r.c.content_purged_at.is_(None),  # examples need content
        )
        return list(conn.execute(query.order_by(r.c.created_at.desc()).limit(EXAMPLES)))

    rejected = [{"run_id": run_id, "note": (note or "")[:300]} for run_id, note, _ in latest("rejected")]
    edited = [
        {
            "run_id": run_id,
            "correction": (final if isinstance(final, str) else orjson.dumps(final).decode())[:300],
            "note": (note or "")[:300],
        }
        for run_id, note, final in latest("edited")
    ]
    return {
        "feedback_flags": [
            {"flag": flag, "count": n, "examples": examples.get(flag, [])} for flag, n in flags.most_common()
        ],
        "review_reasons": [{"reason": reason, "count": n} for reason, n in reasons.most_common()],
        "review_outcomes": dict(outcomes),
        "rejections": rejected,
        "corrections": edited,
    }


def monthly_budget(conn: Any, spec: UseCaseSpec) -> float | None:
    total = 0.0
    found = False
    for row in conn.execute(
        select(departments.c.id, departments.c.budget).where(departments.c.id.in_(spec.departments))
    ):
        budget = row[1]
        if (
            isinstance(budget, dict)
            and budget.get("period") == "month"
            and isinstance(budget.get("usd"), int | float)
        ):
            total += float(budget["usd"])
            found = True
    return total if found else None


def _simulated(conn: Any, usecase_id: str, spec: UseCaseSpec) -> bool:
    """Simulated data in the pilot: a spec marked so, simulated tasks, or users marked ``simulated``."""
    if spec.definition.get("simulation"):
        return True
    hit = conn.execute(
        select(tasks.c.id).where(tasks.c.usecase_id == usecase_id, tasks.c.source == "simulation").limit(1)
    ).first()
    if hit is not None:
        return True
    simulated = [
        r[0] for r in conn.execute(select(users.c.email, users.c.attributes)) if (r[1] or {}).get("simulated")
    ]
    if not simulated:
        return False
    found = conn.execute(
        select(tasks.c.id).where(tasks.c.usecase_id == usecase_id, tasks.c.user_ref.in_(simulated)).limit(1)
    ).first()
    return found is not None


def _interval(i: Interval) -> dict[str, Any]:
    return i.as_dict()


def build(engine: Engine, usecase_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the report says, as data."""
    return build_with_sizes(engine, usecase_id, now=now)[0]


def build_with_sizes(
    engine: Engine, usecase_id: str, *, now: datetime | None = None
) -> tuple[dict[str, Any], SampleSizes]:
    """:func:`build`, and the sample sizes its one read of the pilot gave: what
    :func:`metrics.sample_sizes` gives for the pilot's window (``tasks_per_day`` None), so the
    next gate's sample checks need no read of their own (``readiness.samples(..., known=)``).
    A metric whose size depends on the projected volume is left out when the spec declares one."""
    now = now or datetime.now(UTC)
    row = store.get(engine, usecase_id)
    if row["current_version"] is None:
        raise BadRequest(f"the use case {usecase_id!r} has no spec yet, so nothing to report", code="no_spec")
    with engine.connect() as conn:
        spec = store.current_spec(conn, usecase_id)
        assert spec is not None  # a current version exists (checked above)
        start, end = pilot_window(conn, usecase_id)
        criteria, amendments, locked = locked_criteria(conn, usecase_id, spec)
        failures = _failure_modes(conn, usecase_id, start, end)
        budget = monthly_budget(conn, spec)
        simulated = _simulated(conn, usecase_id, spec)
    tasks_per_day = spec.projected_volume.get("tasks_per_day")
    tpd = float(tasks_per_day) if isinstance(tasks_per_day, int | float) else None
    scope = Scope(usecase_id=usecase_id, start=start, end=end)
    overall_confidence = 0.95
    # One read for the whole pilot and its departments. The report shows no bootstrapped metric
    # per department, so the departments' bootstraps run only for a criterion that needs one.
    department_bootstraps = any(
        c.segment is not None
        and c.segment.department is not None
        and c.metric in BOOTSTRAPPED
        and c.confidence == overall_confidence
        for c in criteria
    )
    overall, departments_sets = compute_with_departments(
        engine,
        scope,
        tasks_per_day=tpd,
        confidence=overall_confidence,
        department_bootstraps=department_bootstraps,
    )
    segmented: dict[str, MetricSet] = {}

    def metrics_for(c: Criterion) -> Interval:
        if c.confidence == overall_confidence:
            if c.segment is None:
                return overall.values[c.metric]
            if (
                c.segment.department is not None
                and c.segment.department in departments_sets
                and (department_bootstraps or c.metric not in BOOTSTRAPPED)
            ):
                return departments_sets[c.segment.department].values[c.metric]  # read once, above
        key = f"{c.segment.describe() if c.segment else 'all'} at {c.confidence}"
        if key not in segmented:
            segmented[key] = compute(
                engine,
                Scope(
                    usecase_id,
                    start,
                    end,
                    department=c.segment.department if c.segment else None,
                    cohort=c.segment.cohort if c.segment else None,
                ),
                tasks_per_day=tpd,
                confidence=c.confidence,
                refresh=False,
            )
        return segmented[key].values[c.metric]

    verdicts = assessment.judge_criteria(criteria, metrics_for)
    evaluation = standing.summary(standing.latest_for_evidence(engine, usecase_id, end))
    flags = assessment.red_flags(
        amendments=amendments,
        concentration=overall.concentration,
        cohorts=overall.cohorts,
        tasks_per_day=tpd,
        retention=overall.values["retention_4w"],
        groups=overall.groups,
        needs_timing=any(c.metric == "time_saved_pct" for c in criteria),
        evaluated=evaluation is not None,
        live_evaluated=evaluation is not None and bool(evaluation["live_cases"]),
    )
    recommendation, reasons = assessment.recommend(verdicts, flags)
    projected = overall.values["projected_monthly_cost_usd"]
    names = [m for m in METRICS if tpd is None or m not in VOLUME_DEPENDENT]

    def sizes(m: MetricSet) -> dict[str, int]:
        return {name: m.values[name].n for name in names}

    known = SampleSizes(sizes(overall), {d: sizes(m) for d, m in departments_sets.items()})
    data = {
        "usecase_id": usecase_id,
        "title": spec.title,
        "description": spec.description,
        "stage": row["stage"],
        "spec_version": row["current_version"],
        "generated_at": now,
        "window": {"start": start, "end": end or now, "pilot_started": start is not None},
        "criteria_locked": locked,
        "simulated": simulated,
        "owners": spec.owners.model_dump(),
        "definition": spec.definition,
        "criteria": [
            {
                "criterion": v.criterion.label(),
                "metric": v.criterion.metric,
                "description": METRICS[v.criterion.metric].description,
                "threshold": ("≥ " if v.criterion.at_least is not None else "≤ ")
                + f"{v.criterion.threshold:g}",
                "min_samples": v.criterion.min_samples,
                "outcome": v.outcome.value,
                "reason": v.reason,
                "interval": _interval(v.interval),
            }
            for v in verdicts
        ],
        "red_flags": [f.to_dict() for f in flags],
        "recommendation": recommendation,
        "reasons": reasons,
        "metrics": {
            name: {
                **_interval(overall.values[name]),
                "family": m.family,
                "unit": m.unit,
                "description": m.description,
            }
            for name, m in METRICS.items()
        },
        "adoption": {
            "weekly": overall.weekly,
            "concentration": overall.concentration,
            "cohorts": overall.cohorts,
            "by_department": {
                dept: {
                    k: _interval(s.values[k]) for k in ("adoption_rate", "useful_rate", "weekly_active_users")
                }
                for dept, s in departments_sets.items()
            },
        },
        "tasks": overall.groups,
        "cost": {
            "per_run": _interval(overall.values["cost_per_run_usd"]),
            "per_task": _interval(overall.values["cost_per_task_usd"]),
            "projected_monthly": _interval(projected),
            "tasks_per_day": tpd,
            "monthly_budget_usd": budget,
            "within_budget": (
                None if budget is None or projected.estimate is None else bool(projected.high <= budget)
            ),
        },
        "failure_modes": failures,
        "evaluation": evaluation,
    }
    return data, known


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {list(FORMATS)}", param="format")
    if fmt == "json":
        import orjson

        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "-" if v is None else f"{v:.0%}"
    template = env.get_template("report.html" if fmt == "html" else "report.md")
    return template.render(r=data)


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "fraction":
        return f"{value:.1%}"
    if unit.startswith("USD"):
        return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
