"""Alert rules as data: a metric, one threshold (above or below), a window and a minimum sample.

Rules come from a use case's spec (``alerts:``, checked on that use case) and from the platform
config (``alerts.rules``, checked on every use case, or on every department and key budget for the
budget metrics). The vocabulary below is every metric a rule may name; docs/monitoring.md
describes each one.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Source = Literal["evidence", "profile", "drift", "budget"]
Severity = Literal["info", "warning", "critical"]

# metric → where its value comes from. "evidence": aerodrome.evidence.metrics over the window;
# "profile": the monitoring profiles (lengths, refusals); "drift": the drift test against the
# baseline (the number of drifted features); "budget": spend against a department's or key's budget.
ALERT_METRICS: dict[str, Source] = {
    "useful_rate": "evidence",
    "flag_rate": "evidence",
    "review_approval_rate": "evidence",
    "error_rate": "evidence",
    "fallback_rate": "evidence",
    "cache_hit_rate": "evidence",
    "p50_latency_s": "evidence",
    "p95_latency_s": "evidence",
    "cost_per_run_usd": "evidence",
    "runs": "evidence",
    "refusal_rate": "profile",
    "input_chars_mean": "profile",
    "output_chars_mean": "profile",
    "drifted_features": "drift",
    "budget_spent_pct": "budget",
    "budget_projected_pct": "budget",
}

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> int:
    """'90s', '15m', '1h', '7d' → seconds (ValueError with the accepted forms otherwise)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a number and s, m, h or d (e.g. 15m, 1h, 7d)")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


class AlertRule(BaseModel):
    """``{metric: error_rate, above: 0.05, window: 1h, min_samples: 50}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description=f"one of: {', '.join(ALERT_METRICS)}")
    above: float | None = Field(default=None, description="fires when the value is above this")
    below: float | None = Field(default=None, description="fires when the value is below this")
    window: str = Field(default="1h", description="trailing window the value is measured over (15m, 1h, 1d)")
    min_samples: int = Field(
        default=20, ge=0, description="fewer runs (or rated runs, for rates of ratings) than this: no verdict"
    )
    severity: Severity = Field(
        default="warning", description="info, warning or critical (shown in the message)"
    )
    name: str | None = Field(
        default=None, max_length=100, description="stable name of the rule (default: metric, side, threshold)"
    )
    webhooks: list[str] | None = Field(
        default=None, description="webhook names to notify (default: every webhook of alerts.webhooks)"
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in ALERT_METRICS:
            raise ValueError(f"unknown alert metric {value!r}; known: {', '.join(ALERT_METRICS)}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        duration_s(value)
        return value

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"alert on {self.metric}: give exactly one of above or below")
        return self

    @property
    def window_s(self) -> int:
        return duration_s(self.window)

    @property
    def side(self) -> Literal["above", "below"]:
        return "above" if self.above is not None else "below"

    @property
    def threshold(self) -> float:
        value = self.above if self.above is not None else self.below
        assert value is not None
        return value

    @property
    def source(self) -> Source:
        return ALERT_METRICS[self.metric]

    @property
    def rule_id(self) -> str:
        return self.name or f"{self.metric}-{self.side}-{self.threshold:g}"

    def breached(self, value: float) -> bool:
        return value > self.threshold if self.above is not None else value < self.threshold
