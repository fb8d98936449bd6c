"""Whether a run's output is held for a person before release, and why."""

from __future__ import annotations

from collections.abc import Callable

from aerodrome.usecases.spec import UseCaseSpec


def review_reasons(
    spec: UseCaseSpec, *, flags: list[str], fallback: bool, draw: Callable[[], float]
) -> list[str]:
    """The reasons to hold (empty: release now). ``flags`` are ``flagged:<check>`` marks of this run."""
    when = set(spec.review.when)
    reasons: list[str] = []
    if "always" in when:
        reasons.append("always")
    if "flagged" in when:
        reasons += [f for f in dict.fromkeys(flags)]
    if "fallback" in when and fallback:
        reasons.append("fallback")
    if "risk_high" in when and spec.risk_tier == "high":
        reasons.append("risk_high")
    if "risk_medium" in when and spec.risk_tier in ("medium", "high"):
        reasons.append("risk_medium")
    if not reasons and spec.review.sample_rate > 0 and draw() < spec.review.sample_rate:
        reasons.append("sample")
    return reasons
