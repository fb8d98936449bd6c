"""Stage gates as units: every requirement, skipped steps, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aerodrome.evidence.stages import Check, GateContext, gate_checks
from aerodrome.usecases.spec import UseCaseSpec

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _spec(**kw: Any) -> UseCaseSpec:
    base: dict[str, Any] = {
        "id": "u",
        "title": "U",
        "departments": ["hr"],
        "inputs": {"q": {"required": True}},
        "prompt": "{{ q }}",
        "model": "chat-local",
        "owners": {"technical": "t@example.com", "workflow": "w@example.com"},
        "data_class": "internal",
        "definition": {"problem": "p", "users": "u", "outputs": "o", "baseline": "b"},
        "success_criteria": [{"metric": "useful_rate", "at_least": 0.8, "min_samples": 50}],
        "projected_volume": {"tasks_per_day": 100},
    }
    base.update(kw)
    return UseCaseSpec.model_validate(base)


def _ctx(stage: str, spec: UseCaseSpec | None, **kw: Any) -> GateContext:
    return GateContext(stage=stage, spec=spec, spec_version=1 if spec else None, now=NOW, **kw)


def _missing(checks: list[Check]) -> list[str]:
    return [c.requirement for c in checks if not c.ok]


def test_a_skipped_step_is_refused() -> None:
    checks = gate_checks("pilot", _ctx("idea", _spec()), None)
    assert _missing(checks) == ["next stage"] and "discovery" in checks[0].detail
    assert _missing(gate_checks("production", _ctx("pilot", _spec()), None)) == ["next stage"]
    assert _missing(gate_checks("discovery", _ctx("pilot", _spec()), None)) == ["next stage"]  # no going back
    assert _missing(gate_checks("moon", _ctx("idea", _spec()), None)) == ["stage"]


def test_the_pilot_gate_lists_everything_missing() -> None:
    bare = _spec(
        owners={},
        data_class=None,
        definition={"problem": "p"},
        success_criteria=[{"metric": "useful_rate", "at_least": 0.8}],
        projected_volume={},
    )
    missing = _missing(gate_checks("pilot", _ctx("discovery", bare), None))
    assert missing == [
        "definition.users",
        "definition.outputs",
        "definition.baseline",
        "success_criteria.0",
        "projected_volume.tasks_per_day",
        "data_class",
        "owners",
    ]
    assert not _missing(gate_checks("pilot", _ctx("discovery", _spec()), None))
    assert _missing(gate_checks("pilot", _ctx("discovery", None), None)) == ["spec"]
    # after a redesign, the same version may not start a new pilot
    again = _ctx("discovery", _spec(), last_redesign_version=1)
    assert _missing(gate_checks("pilot", again, None)) == ["new spec version"]


def test_the_decision_gate_waits_for_the_window_or_the_samples() -> None:
    started = NOW - timedelta(weeks=2)
    early = _ctx(
        "pilot", _spec(), pilot_started_at=started, samples=lambda: [Check("useful_rate", False, "12 of 50")]
    )
    checks = gate_checks("decision", early, None)
    assert _missing(checks) and "12 of 50" in checks[0].detail
    full = _ctx("pilot", _spec(), pilot_started_at=started, samples=lambda: [Check("useful_rate", True)])
    assert not _missing(gate_checks("decision", full, None))
    late = _ctx("pilot", _spec(), pilot_started_at=NOW - timedelta(weeks=5))
    assert not _missing(gate_checks("decision", late, None))
    short = _ctx("pilot", _spec(definition={"pilot_weeks": 1}), pilot_started_at=NOW - timedelta(days=8))
    assert not _missing(gate_checks("decision", short, None))


def test_decisions_lead_where_they_say() -> None:
    ctx = _ctx("decision", _spec())
    assert not _missing(gate_checks("hardening", ctx, "go"))
    assert not _missing(gate_checks("discovery", ctx, "redesign"))
    assert not _missing(gate_checks("retired", ctx, "stop"))
    assert _missing(gate_checks("hardening", ctx, None)) == ["decision"]
    assert _missing(gate_checks("hardening", ctx, "stop")) == ["decision"]
    assert _missing(gate_checks("retired", _ctx("pilot", _spec()), None)) == ["decision stop"]
    assert not _missing(gate_checks("retired", _ctx("idea", None), "stop"))
    assert _missing(gate_checks("discovery", _ctx("retired", _spec()), None)) == ["stage"]


def test_the_production_readiness_checklist() -> None:
    ready = _spec(
        guardrails={"pii": {"action": "redact"}, "output": {"max_chars": 100}},
        fallback={"on_upstream_error": "later"},
        alerts=[{"metric": "error_rate", "above": 0.05}],
        review={"sample_rate": 0.05},
    )
    ok = Check("eval suite passing", True)
    cost = Check("cost within budget", True)
    ctx = _ctx("hardening", ready, evals=lambda: ok, cost=lambda: cost)
    assert not _missing(gate_checks("production", ctx, None))
    missing = _missing(gate_checks("production", _ctx("hardening", _spec()), None))
    assert missing == [
        "guardrails configured",
        "output validation configured",
        "fallback defined",
        "alerts defined",
        "human override path",
        "eval suite passing",
        "cost within budget",
    ]
