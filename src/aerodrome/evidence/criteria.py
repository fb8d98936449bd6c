"""Success criteria: the metric vocabulary, criteria as data, their verdicts and their lock hash.

A criterion names a metric, one threshold (``at_least`` or ``at_most``), optionally a minimum
sample size and a segment. Its verdict on a measured :class:`~aerodrome.evidence.stats.Interval`
is PASS when the whole interval is on the good side of the threshold, FAIL when it is wholly
on the bad side and INCONCLUSIVE otherwise (too few samples, no data, or an interval that
contains the threshold). Criteria are locked when the pilot starts by storing
:func:`lock_hash`; a different hash later means they were amended.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aerodrome.evidence.stats import Interval

Kind = Literal["rate", "median", "ratio", "count", "mean", "percentile"]
Direction = Literal["higher", "lower"]
Family = Literal["quality", "efficiency", "adoption", "operations", "cost"]


@dataclass(frozen=True)
class Metric:
    """One metric of the vocabulary. ``low``/``high`` bound the values a threshold may take."""

    name: str
    family: Family
    kind: Kind
    unit: str
    direction: Direction
    description: str
    low: float | None = None
    high: float | None = None

    @property
    def has_interval(self) -> bool:
        """False for counts, which are known exactly and compared by their value."""
        return self.kind != "count"


def _vocabulary(*metrics: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({m.name: m for m in metrics})


def _rate(name: str, family: Family, direction: Direction, description: str) -> Metric:
    return Metric(name, family, "rate", "fraction", direction, description, 0.0, 1.0)


METRICS: Mapping[str, Metric] = _vocabulary(
    # quality
    _rate("useful_rate", "quality", "higher", "share of rated outputs rated useful"),
    _rate(
        "flag_rate", "quality", "lower", "share of runs flagged wrong, harmful, hallucinated or off-policy"
    ),
    _rate("review_approval_rate", "quality", "higher", "share of reviewed outputs approved as they were"),
    Metric(
        "edit_ratio",
        "quality",
        "ratio",
        "fraction",
        "lower",
        "share of reviewed outputs a reviewer edited before release (edited / decided)",
        0.0,
        None,
    ),
    _rate("eval_pass_rate", "quality", "higher", "share of evaluation cases passing on the pinned model"),
    # efficiency
    Metric(
        "time_saved_pct",
        "efficiency",
        "ratio",
        "fraction",
        "higher",
        "1 - median task time with AI / median task time at baseline (0.25: a quarter less time)",
        None,
        1.0,
    ),
    # adoption
    Metric(
        "weekly_active_users", "adoption", "count", "users", "higher", "distinct users active in a week", 0.0
    ),
    _rate("adoption_rate", "adoption", "higher", "active users / eligible users"),
    _rate("retention_4w", "adoption", "higher", "share of users active again 4 weeks after their first week"),
    # operations
    Metric("p50_latency_s", "operations", "percentile", "s", "lower", "median response time", 0.0),
    Metric(
        "p95_latency_s", "operations", "percentile", "s", "lower", "response time 95% of requests beat", 0.0
    ),
    _rate("error_rate", "operations", "lower", "share of runs that failed"),
    _rate("fallback_rate", "operations", "lower", "share of runs answered by the fallback"),
    _rate("cache_hit_rate", "operations", "higher", "share of runs served from the cache"),
    # cost
    Metric("cost_per_run_usd", "cost", "mean", "USD", "lower", "mean cost of one model call", 0.0),
    Metric("cost_per_task_usd", "cost", "mean", "USD", "lower", "mean cost of the calls one task used", 0.0),
    Metric(
        "projected_monthly_cost_usd",
        "cost",
        "mean",
        "USD/month",
        "lower",
        "mean cost per task x projected tasks per day x 30",
        0.0,
    ),
)
"""The metric vocabulary of DESIGN.md, by name. Fractions are 0-1 (0.80 means 80%)."""


class Segment(BaseModel):
    """Where a criterion applies: one department, or a cohort selected by user attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: str | None = Field(default=None, min_length=1)
    cohort: dict[str, str | bool | int] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Segment:
        if (self.department is None) == (self.cohort is None):
            raise ValueError("segment needs exactly one of department or cohort")
        return self

    def describe(self) -> str:
        if self.department is not None:
            return f"department {self.department}"
        return "cohort " + ", ".join(f"{k}={v}" for k, v in sorted((self.cohort or {}).items()))


class Criterion(BaseModel):
    """A success criterion, e.g. ``{metric: useful_rate, at_least: 0.80, min_samples: 200}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="a metric of the vocabulary (METRICS)")
    at_least: float | None = Field(default=None, description="passes when the metric is at least this")
    at_most: float | None = Field(default=None, description="passes when the metric is at most this")
    min_samples: int | None = Field(default=None, ge=1, description="inconclusive below this sample size")
    segment: Segment | None = Field(default=None, description="{department: ...} or {cohort: {...}}")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="confidence of the interval")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known metrics: {', '.join(METRICS)}")
        return value

    @field_validator("at_least", "at_most")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    @model_validator(mode="after")
    def _one_threshold(self) -> Criterion:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError(f"{self.metric}: give exactly one of at_least or at_most")
        m = METRICS[self.metric]
        t = self.threshold
        if (m.low is not None and t < m.low) or (m.high is not None and t > m.high):
            bounds = (
                f"between {m.low} and {m.high}"
                if m.low is not None and m.high is not None
                else (f"at least {m.low}" if m.low is not None else f"at most {m.high}")
            )
            hint = " (a fraction: 0.80 means 80%)" if m.unit == "fraction" else ""
            field = "at_least" if self.at_least is not None else "at_most"
            raise ValueError(f"{field}: {self.metric} threshold must be {bounds}{hint}, got {t}")
        return self

    @property
    def threshold(self) -> float:
        value = self.at_least if self.at_least is not None else self.at_most
        assert value is not None  # guaranteed by _one_threshold
        return value

    @property
    def definition(self) -> Metric:
        return METRICS[self.metric]

    def label(self) -> str:
        return self.metric if self.segment is None else f"{self.metric} ({self.segment.describe()})"


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class Verdict:
    criterion: Criterion
    interval: Interval
    outcome: Outcome
    reason: str


def _fmt(value: float, unit: str) -> str:
    a = abs(value)
    if a >= 100:
        text = f"{value:,.0f}"
    elif a >= 0.1 or value == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.2g}"
    if unit.startswith("USD"):
        return f"${text}" + unit[3:]
    if unit in ("s", "users"):
        return f"{text} {unit}" if unit == "s" else text
    return text


def verdict(criterion: Criterion, interval: Interval) -> Verdict:
    """Judge ``interval`` (computed at ``criterion.confidence``) against the criterion."""
    m = criterion.definition
    if (
        m.has_interval
        and interval.estimate is not None
        and not math.isclose(interval.confidence, criterion.confidence)
    ):
        raise ValueError(
            f"{criterion.metric}: interval computed at confidence {interval.confidence}, "
            f"criterion asks for {criterion.confidence}"
        )
    name, unit, t = criterion.label(), m.unit, criterion.threshold
    at_least = criterion.at_least is not None
    bound = f"at least {_fmt(t, unit)}" if at_least else f"at most {_fmt(t, unit)}"
    worse = f"below {_fmt(t, unit)}" if at_least else f"above {_fmt(t, unit)}"

    def done(outcome: Outcome, reason: str) -> Verdict:
        return Verdict(criterion, interval, outcome, f"{reason}: {outcome.value}")

    if interval.estimate is None or interval.n == 0:
        return done(
            Outcome.INCONCLUSIVE, f"{name} has no data yet (n=0), so it cannot be judged against {bound}"
        )
    est = interval.estimate
    if criterion.min_samples is not None and interval.n < criterion.min_samples:
        return done(
            Outcome.INCONCLUSIVE,
            f"{name} is {_fmt(est, unit)} but from only n={interval.n}; "
            f"{criterion.min_samples} are needed before judging it against {bound}",
        )
    if not m.has_interval:
        ok = est >= t if at_least else est <= t
        return done(
            Outcome.PASS if ok else Outcome.FAIL,
            f"{name} {_fmt(est, unit)} (n={interval.n}) is {bound if ok else worse}",
        )
    pct = f"{criterion.confidence * 100:g}%"
    evidence = f"{name} {_fmt(est, unit)} ({pct} CI {_fmt(interval.low, unit)}\u2013{_fmt(interval.high, unit)}, n={interval.n})"
    good = interval.low >= t if at_least else interval.high <= t
    bad = interval.high < t if at_least else interval.low > t
    if good:
        return done(Outcome.PASS, f"{evidence} is {bound}")
    if bad:
        return done(Outcome.FAIL, f"{evidence} is {worse}")
    return done(
        Outcome.INCONCLUSIVE,
        f"{evidence} could be either side of {_fmt(t, unit)}: the interval contains the threshold, "
        "so more data is needed",
    )


def canonical_json(criteria: Sequence[Criterion]) -> str:
    """The criteria as canonical JSON: keys sorted, list order kept, defaults left out (so
    spelling a default out, or adding a field with a default later, does not change it)."""
    data = [c.model_dump(mode="json", exclude_defaults=True) for c in criteria]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def lock_hash(criteria: Sequence[Criterion]) -> str:
    """SHA-256 (hex) of :func:`canonical_json`: store it when the pilot starts, compare later."""
    return hashlib.sha256(canonical_json(criteria).encode("utf-8")).hexdigest()
