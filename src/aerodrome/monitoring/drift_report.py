"""A use case's drift report: its live window tested against its baseline, feature by feature.

Rates and latency come from the evidence engine (:func:`aerodrome.evidence.metrics.compute`
over rollups); input embeddings, lengths and refusals from the traffic profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine

from aerodrome.evidence import metrics
from aerodrome.monitoring import drift, profiles
from aerodrome.monitoring.alert_rules import duration_s
from aerodrome.monitoring.drift_baseline import Baseline, baseline_for
from aerodrome.usecases.spec import DriftSpec

Overall = Literal["drifted", "stable", "insufficient", "no_baseline", "disabled"]
MIN_RATED = 30  # rated runs needed on each side to test useful_rate
_UP_RATES = ("fallback_rate", "flag_rate", "error_rate")


@dataclass(slots=True)
class DriftReport:
    usecase_id: str
    status: Overall
    window_start: datetime
    window_end: datetime
    runs: int = 0
    baseline: Baseline | None = None
    baseline_runs: int = 0
    false_alarm_rate: float = 0.0
    features: list[drift.FeatureResult] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.status == "drifted"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "usecase_id": self.usecase_id,
            "status": self.status,
            "window": {
                "start": self.window_start.isoformat(),
                "end": self.window_end.isoformat(),
                "runs": self.runs,
            },
            "baseline": None
            if self.baseline is None
            else {**self.baseline.as_dict(), "runs": self.baseline_runs},
            "false_alarm_rate": self.false_alarm_rate,
            "drifted": self.drifted,
            "features": [f.as_dict() for f in self.features],
        }


def assess(
    engine: Engine,
    usecase_id: str,
    spec: DriftSpec,
    *,
    now: datetime | None = None,
    department: str | None = None,
) -> DriftReport:
    now = now or datetime.now(UTC)
    start = now - timedelta(seconds=duration_s(spec.window))
    report = DriftReport(usecase_id, "disabled", start, now, false_alarm_rate=spec.false_alarm_rate)
    if not spec.enabled:
        return report
    # the window's profile: the hours that start in it (the first, partial hour belongs to the baseline
    # side only if the baseline reaches it; windows are whole hours of the profiles)
    window_hours = profiles.hourly(
        engine, usecase_id, profiles.hour_of(start), now + timedelta(hours=1), department=department
    )
    window = profiles.total(window_hours)
    report.runs = window.runs
    base = baseline_for(engine, usecase_id, profiles.hour_of(start))
    if base is None:
        report.status = "no_baseline"
        return report
    report.baseline = base
    base_hours = list(
        profiles.hourly(engine, usecase_id, base.start, base.end, department=department).values()
    )
    report.baseline_runs = sum(h.runs for h in base_hours)
    alpha = spec.false_alarm_rate / len(spec.features)
    confidence = 1 - alpha
    scope = metrics.Scope(usecase_id, start=start, end=now, department=department)
    base_scope = metrics.Scope(usecase_id, start=base.start, end=base.end, department=department)
    now_m = metrics.compute(engine, scope, confidence=confidence, refresh=False).values
    base_m = metrics.compute(engine, base_scope, confidence=confidence, refresh=False).values
    report.runs = max(report.runs, now_m["error_rate"].n)
    report.baseline_runs = max(report.baseline_runs, base_m["error_rate"].n)
    min_n = spec.min_runs
    for feature in spec.features:
        if feature == "input_centroid":
            result = drift.centroid_test(base_hours, window, alpha, min_n)
        elif feature in ("input_length", "output_length"):
            result = drift.length_test(feature, base_hours, window, alpha, min_n, spec.min_relative_change)
        elif feature == "refusal_rate":
            b = drift.summed(base_hours)
            result = drift.rate_test(
                feature,
                b.refusals,
                b.answered,
                window.refusals,
                window.answered,
                worse="up",
                alpha=alpha,
                min_n=min_n,
                min_change=spec.min_rate_change,
            )
        elif feature in _UP_RATES or feature == "useful_rate":
            x_b, n_b = drift.counts(base_m[feature])
            x_w, n_w = drift.counts(now_m[feature])
            result = drift.rate_test(
                feature,
                x_b,
                n_b,
                x_w,
                n_w,
                worse="down" if feature == "useful_rate" else "up",
                alpha=alpha,
                min_n=min(MIN_RATED, min_n) if feature == "useful_rate" else min_n,
                min_change=spec.min_rate_change,
            )
        else:  # p95_latency_s
            result = drift.latency_test(
                base_m["p95_latency_s"],
                now_m["p95_latency_s"],
                alpha=alpha,
                min_n=min_n,
                min_change=spec.min_relative_change,
            )
        report.features.append(result)
    statuses = {f.status for f in report.features}
    if "drifted" in statuses:
        report.status = "drifted"
    elif "stable" in statuses:
        report.status = "stable"
    else:
        report.status = "insufficient"
    return report
