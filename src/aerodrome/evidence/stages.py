"""Stages and gates: idea → discovery → pilot → decision → hardening → production → retired.

A gate opens only when its requirements hold; :func:`gate_checks` lists every requirement
with whether it holds and why not, so a refused transition says exactly what is missing.
From ``decision`` a recorded decision moves on: *go* → hardening, *redesign* → discovery
(with a new spec version), *stop* → retired. *stop* may retire a use case from any stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aerodrome.usecases.spec import UseCaseSpec

STAGES: tuple[str, ...] = ("idea", "discovery", "pilot", "decision", "hardening", "production", "retired")
NEXT: dict[str, str] = {
    "idea": "discovery",
    "discovery": "pilot",
    "pilot": "decision",
    "decision": "hardening",
    "hardening": "production",
}
Decision = Literal["go", "redesign", "stop"]
DECISION_TARGET: dict[str, str] = {"go": "hardening", "redesign": "discovery", "stop": "retired"}
DEFINITION_FIELDS = ("problem", "users", "outputs", "baseline")
DEFAULT_PILOT_WEEKS = 4
LIVE_STAGES = frozenset({"pilot", "decision", "hardening", "production"})  # criteria are locked


@dataclass(frozen=True, slots=True)
class Check:
    requirement: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "ok": self.ok, "detail": self.detail}


@dataclass(slots=True)
class GateContext:
    """What the gates look at, gathered by the caller (database, metrics, evaluations)."""

    stage: str
    spec: UseCaseSpec | None
    spec_version: int | None
    now: datetime
    problem: str = ""  # the proposal's problem statement, for a use case with no spec yet
    pilot_started_at: datetime | None = None
    last_redesign_version: int | None = None  # the spec version when it was last sent back to discovery
    samples: Callable[[], list[Check]] | None = None  # per criterion: min_samples reached?
    evals: Callable[[], Check] | None = None  # eval suite passing on the pinned model?
    cost: Callable[[], Check] | None = None  # cost at projected volume within budget?
    extra: dict[str, Any] = field(default_factory=dict)


def _definition(spec: UseCaseSpec) -> list[Check]:
    checks = []
    for name in DEFINITION_FIELDS:
        value = spec.definition.get(name)
        ok = isinstance(value, str) and bool(value.strip())
        checks.append(
            Check(f"definition.{name}", ok, "" if ok else f"describe the {name} in definition.{name}")
        )
    return checks


def _criteria(spec: UseCaseSpec) -> list[Check]:
    if not spec.success_criteria:
        return [Check("success_criteria", False, "add success criteria with thresholds and minimum samples")]
    return [
        Check(
            f"success_criteria.{i}",
            crit.min_samples is not None,
            "" if crit.min_samples is not None else f"{crit.metric}: needs min_samples",
        )
        for i, crit in enumerate(spec.success_criteria)
    ]


def _owners(spec: UseCaseSpec) -> Check:
    missing = [role for role in ("technical", "workflow") if not getattr(spec.owners, role).strip()]
    return Check("owners", not missing, f"name the {' and '.join(missing)} owner" if missing else "")


def _to_discovery(ctx: GateContext) -> list[Check]:
    problem = ctx.problem or (str(ctx.spec.definition.get("problem") or "") if ctx.spec else "")
    ok = bool(problem.strip())
    return [
        Check("problem statement", ok, "" if ok else "state the problem (definition.problem or the proposal)")
    ]


def _to_pilot(ctx: GateContext) -> list[Check]:
    spec = ctx.spec
    if spec is None:
        return [Check("spec", False, "write the use case's spec (inputs, prompt, model) first")]
    checks = _definition(spec) + _criteria(spec)
    volume = spec.projected_volume.get("tasks_per_day")
    ok = isinstance(volume, int | float) and volume > 0
    checks.append(
        Check("projected_volume.tasks_per_day", ok, "" if ok else "declare the projected tasks per day")
    )
    checks.append(
        Check(
            "data_class",
            spec.data_class is not None,
            "" if spec.data_class is not None else "set the highest data class of the inputs (data_class)",
        )
    )
    checks.append(_owners(spec))
    if ctx.last_redesign_version is not None and ctx.spec_version == ctx.last_redesign_version:
        checks.append(
            Check("new spec version", False, "a redesign needs a new spec version before a new pilot")
        )
    return checks


def _to_decision(ctx: GateContext) -> list[Check]:
    spec = ctx.spec
    weeks = DEFAULT_PILOT_WEEKS
    if spec is not None and isinstance(spec.definition.get("pilot_weeks"), int | float):
        weeks = spec.definition["pilot_weeks"]
    started = ctx.pilot_started_at
    ends = started + timedelta(weeks=weeks) if started is not None else None
    window_over = ends is not None and ctx.now >= ends
    samples = ctx.samples() if ctx.samples is not None else []
    reached = bool(samples) and all(c.ok for c in samples)
    if window_over or reached:
        detail = "pilot window over" if window_over else "every criterion reached its minimum samples"
        return [Check("pilot window over or sample sizes reached", True, detail)]
    short = "; ".join(c.detail for c in samples if not c.ok) or "no criteria to count"
    until = f"the window ends {ends:%Y-%m-%d %H:%M} UTC" if ends is not None else "the pilot has not started"
    return [Check("pilot window over or sample sizes reached", False, f"{until}; samples: {short}")]


def _to_production(ctx: GateContext) -> list[Check]:
    spec = ctx.spec
    if spec is None:
        return [Check("spec", False, "no spec")]
    g = spec.guardrails
    checks = [
        Check(
            "guardrails configured",
            g.pii is not None or g.prompt_injection is not None or bool(g.custom),
            "configure input guardrails (pii, prompt_injection)",
        ),
        Check(
            "output validation configured",
            g.output is not None or spec.output.schema_ is not None,
            "configure guardrails.output or an output schema",
        ),
        Check(
            "fallback defined",
            any(v is not None for v in spec.fallback.model_dump().values()),
            "define at least one fallback answer",
        ),
        Check("alerts defined", bool(spec.alerts), "define alerts (e.g. on error_rate, p95 latency, cost)"),
        Check(
            "human override path",
            bool(spec.review.when) or spec.review.sample_rate > 0,
            "configure a review policy (review.when or review.sample_rate)",
        ),
        ctx.evals() if ctx.evals is not None else Check("eval suite passing", False, "no eval suite has run"),
        ctx.cost() if ctx.cost is not None else Check("cost within budget", False, "cost not known"),
        _owners(spec),
    ]
    return [c if not c.ok else Check(c.requirement, True, "") for c in checks]


GATES: dict[str, Callable[[GateContext], list[Check]]] = {
    "discovery": _to_discovery,
    "pilot": _to_pilot,
    "decision": _to_decision,
    "production": _to_production,
}


def gate_checks(to_stage: str, ctx: GateContext, decision: str | None) -> list[Check]:
    """Every requirement of moving from ``ctx.stage`` to ``to_stage``; all must hold."""
    stage = ctx.stage
    if to_stage not in STAGES:
        return [Check("stage", False, f"unknown stage {to_stage!r}; stages are {list(STAGES)}")]
    if stage == "retired":
        return [Check("stage", False, "a retired use case does not move; propose it again")]
    if to_stage == "retired":
        ok = decision == "stop"
        return [Check("decision stop", ok, "" if ok else "retiring needs the decision stop")]
    if stage == "decision":
        wanted = DECISION_TARGET.get(decision or "")
        if wanted != to_stage:
            return [
                Check(
                    "decision",
                    False,
                    "from decision: go → hardening, redesign → discovery, stop → retired"
                    + (f"; {decision!r} leads to {wanted}" if wanted else "; record a decision"),
                )
            ]
        return [Check("decision recorded", True, decision or "")]
    if NEXT.get(stage) != to_stage:
        return [
            Check(
                "next stage",
                False,
                f"{stage} moves on to {NEXT.get(stage)} only; {to_stage} would skip or go back",
            )
        ]
    gate = GATES.get(to_stage)
    return gate(ctx) if gate is not None else []
