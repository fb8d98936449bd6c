"""Alert rules measured on a use case: one :class:`Observation` per rule and scope.

A use case is checked against its own rules (``alerts:`` in its spec), the platform-wide rules
(``alerts.rules``) and, when drift monitoring is on, the implicit drift rule
(``drifted_features above 0`` over the drift window). Metrics are read once per window:
evidence metrics from :func:`aerodrome.evidence.metrics.compute` (over rollups), profile metrics
from the traffic profiles, drift from :func:`aerodrome.monitoring.drift_report.assess`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from aerodrome.evidence import metrics
from aerodrome.monitoring import drift_report, profiles
from aerodrome.monitoring.alert_rules import AlertRule
from aerodrome.usecases.spec import UseCaseSpec

DRIFT_RULE_NAME = "drift"


@dataclass(slots=True)
class Observation:
    """A rule measured on one scope. ``breached`` None: too few samples to say (nothing changes)."""

    rule: AlertRule
    origin: str  # usecase | platform | drift | budget
    scope_kind: str  # usecase | department | key
    scope_id: str
    departments: list[str]
    value: float | None
    samples: int
    breached: bool | None
    summary: str
    usecase_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def open_key(self) -> str:
        return f"{self.origin}:{self.rule.rule_id}|{self.scope_kind}:{self.scope_id}"


def drift_rule(spec: UseCaseSpec) -> AlertRule:
    d = spec.monitoring.drift
    return AlertRule(
        metric="drifted_features",
        above=0,
        window=d.window,
        min_samples=d.min_runs,
        severity=d.severity,
        name=DRIFT_RULE_NAME,
    )


def rules_for(spec: UseCaseSpec, platform_rules: list[AlertRule]) -> list[tuple[AlertRule, str]]:
    rules = [(r, "usecase") for r in spec.alerts]
    rules += [(r, "platform") for r in platform_rules if r.source != "budget"]
    if spec.monitoring.drift.enabled:
        rules.append((drift_rule(spec), "drift"))
    return rules


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "no data"
    if metric.endswith("_rate") or metric.endswith("_pct"):
        return f"{value:.1%}"
    if metric.endswith("_s"):
        return f"{value:.2f}s"
    if metric.endswith("_usd"):
        return f"${value:.4f}"
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def summary(rule: AlertRule, value: float | None, scope: str, samples: int) -> str:
    return (
        f"{rule.metric} of {scope} is {_fmt(value, rule.metric)} "
        f"({rule.side} {_fmt(rule.threshold, rule.metric)}) over {rule.window}, {samples} samples"
    )


def evaluate_usecase(
    engine: Engine, spec: UseCaseSpec, platform_rules: list[AlertRule], now: datetime
) -> list[Observation]:
    uc = spec.id
    out: list[Observation] = []
    evidence: dict[int, metrics.MetricSet] = {}
    hourly: dict[int, profiles.Profile] = {}
    for rule, origin in rules_for(spec, platform_rules):
        w = rule.window_s
        start = now - timedelta(seconds=w)
        details: dict[str, Any] = {"window": rule.window}
        value: float | None
        if rule.source == "evidence":
            if w not in evidence:
                evidence[w] = metrics.compute(engine, metrics.Scope(uc, start=start, end=now), refresh=False)
            values = evidence[w].values
            if rule.metric == "runs":
                value = float(values["error_rate"].n)
                samples = values["error_rate"].n
            else:
                interval = values[rule.metric]
                value, samples = interval.estimate, interval.n
                details["interval"] = interval.as_dict()
        elif rule.source == "profile":
            if w not in hourly:
                hours = profiles.hourly(engine, uc, profiles.hour_of(start), now + timedelta(hours=1))
                hourly[w] = profiles.total(hours)
            prof = hourly[w]
            value = getattr(prof, rule.metric)
            samples = {"refusal_rate": prof.answered, "input_chars_mean": prof.input_n}.get(
                rule.metric, prof.output_n
            )
        else:  # drift
            report = drift_report.assess(engine, uc, spec.monitoring.drift, now=now)
            details["drift"] = report.as_dict()
            samples = report.runs
            value = float(len(report.drifted)) if report.status in ("drifted", "stable") else None
        enough = value is not None and (rule.metric == "runs" or samples >= rule.min_samples)
        breached = rule.breached(value) if enough and value is not None else None
        if rule.source == "drift" and value is not None:
            text = (
                f"drift in use case {uc}: {', '.join(details['drift']['drifted']) or 'none'} "
                f"(window {rule.window}, {samples} runs, against the {details['drift']['baseline']['source']} baseline)"
            )
        else:
            text = summary(rule, value, f"use case {uc}", samples)
        out.append(
            Observation(
                rule=rule,
                origin=origin,
                scope_kind="usecase",
                scope_id=uc,
                departments=list(spec.departments),
                value=value,
                samples=samples,
                breached=breached,
                summary=text,
                usecase_id=uc,
                details=details,
            )
        )
    return out
