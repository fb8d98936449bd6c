"""Success criteria: vocabulary, validation, verdicts on known intervals, the lock hash."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from pydantic import ValidationError

from aerodrome.evidence.criteria import METRICS, Criterion, Outcome, lock_hash, verdict
from aerodrome.evidence.stats import Interval, time_saved, wilson

DESIGN_VOCABULARY = {
    "quality": {"useful_rate", "flag_rate", "review_approval_rate", "edit_ratio", "eval_pass_rate"},
    "efficiency": {"time_saved_pct"},
    "adoption": {"weekly_active_users", "adoption_rate", "retention_4w"},
    "operations": {"p50_latency_s", "p95_latency_s", "error_rate", "fallback_rate", "cache_hit_rate"},
    "cost": {"cost_per_run_usd", "cost_per_task_usd", "projected_monthly_cost_usd"},
}


def test_vocabulary_is_the_design_list_with_sensible_directions() -> None:
    by_family: dict[str, set[str]] = {}
    for m in METRICS.values():
        by_family.setdefault(m.family, set()).add(m.name)
        assert m.kind in {"rate", "median", "ratio", "count", "mean", "percentile"}
        assert m.unit and m.description
    assert by_family == DESIGN_VOCABULARY
    lower_is_better = {n for n, m in METRICS.items() if m.direction == "lower"}
    assert lower_is_better == {
        "flag_rate",
        "edit_ratio",
        "p50_latency_s",
        "p95_latency_s",
        "error_rate",
        "fallback_rate",
        "cost_per_run_usd",
        "cost_per_task_usd",
        "projected_monthly_cost_usd",
    }
    assert not METRICS["weekly_active_users"].has_interval
    assert METRICS["useful_rate"].has_interval


def test_design_example_criteria_validate() -> None:
    example = [
        {"metric": "useful_rate", "at_least": 0.80, "min_samples": 200},
        {"metric": "time_saved_pct", "at_least": 0.20},
        {"metric": "p95_latency_s", "at_most": 4},
        {"metric": "retention_4w", "at_least": 0.60},
        {"metric": "cost_per_task_usd", "at_most": 0.05},
    ]
    criteria = [Criterion.model_validate(c) for c in example]
    assert [c.threshold for c in criteria] == [0.80, 0.20, 4.0, 0.60, 0.05]
    assert criteria[0].confidence == 0.95


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as exc:
        Criterion.model_validate(data)
    return str(exc.value)


def test_validation_errors_name_the_field() -> None:
    msg = _error({"metric": "usefulness", "at_least": 0.8})
    assert "metric" in msg and "unknown metric 'usefulness'" in msg and "useful_rate" in msg
    assert "retention_4w" in msg  # the known metrics are listed
    assert "exactly one of at_least or at_most" in _error({"metric": "useful_rate"})
    assert "exactly one of at_least or at_most" in _error(
        {"metric": "useful_rate", "at_least": 0.8, "at_most": 0.9}
    )
    msg = _error({"metric": "useful_rate", "at_least": 80})
    assert "at_least" in msg and "between 0.0 and 1.0" in msg and "0.80 means 80%" in msg
    assert "min_samples" in _error({"metric": "useful_rate", "at_least": 0.8, "min_samples": 0})
    assert "confidence" in _error({"metric": "useful_rate", "at_least": 0.8, "confidence": 95})
    assert "threshold" in _error({"metric": "useful_rate", "at_least": math.nan})
    assert "extra" in _error({"metric": "useful_rate", "at_least": 0.8, "min_sample": 10}).lower()


def test_segments() -> None:
    dept = Criterion.model_validate(
        {"metric": "adoption_rate", "at_least": 0.3, "segment": {"department": "hr"}}
    )
    assert dept.label() == "adoption_rate (department hr)"
    cohort = Criterion.model_validate(
        {"metric": "useful_rate", "at_least": 0.8, "segment": {"cohort": {"volunteer": False}}}
    )
    assert cohort.segment is not None and cohort.segment.cohort == {"volunteer": False}
    assert "segment" in _error(
        {"metric": "useful_rate", "at_least": 0.8, "segment": {"department": "hr", "cohort": {"a": "b"}}}
    )
    assert "segment" in _error({"metric": "useful_rate", "at_least": 0.8, "segment": {}})


USEFUL = Criterion(metric="useful_rate", at_least=0.80, min_samples=200)


def test_pass_when_the_whole_interval_is_above() -> None:
    ci = wilson(216, 240)  # 0.90, CI about 0.86-0.93
    v = verdict(USEFUL, ci)
    assert v.outcome is Outcome.PASS
    assert v.reason == (
        f"useful_rate 0.90 (95% CI {ci.low:.2f}\u2013{ci.high:.2f}, n=240) is at least 0.80: PASS"
    )


def test_fail_when_the_whole_interval_is_below() -> None:
    v = verdict(USEFUL, wilson(168, 240))  # 0.70, CI about 0.64-0.75
    assert v.outcome is Outcome.FAIL
    assert v.reason.endswith("is below 0.80: FAIL")


def test_inconclusive_when_the_interval_straddles_the_threshold() -> None:
    ci = wilson(197, 240)  # 0.82, CI about 0.77-0.86
    assert ci.low < 0.80 < ci.high
    v = verdict(USEFUL, ci)
    assert v.outcome is Outcome.INCONCLUSIVE
    assert "contains the threshold" in v.reason and "more data" in v.reason


def test_inconclusive_with_too_few_samples_even_if_clearly_good() -> None:
    ci = wilson(150, 150)  # whole interval above 0.80, but only 150 of 200 samples
    assert ci.low > 0.80
    v = verdict(USEFUL, ci)
    assert v.outcome is Outcome.INCONCLUSIVE
    assert "only n=150" in v.reason and "200 are needed" in v.reason
    empty = verdict(USEFUL, wilson(0, 0))
    assert empty.outcome is Outcome.INCONCLUSIVE and "no data" in empty.reason


def test_at_most_criteria_and_units() -> None:
    latency = Criterion(metric="p95_latency_s", at_most=4)
    v = verdict(latency, Interval(3.1, 2.9, 3.4, 500))
    assert v.outcome is Outcome.PASS
    assert v.reason == "p95_latency_s 3.10 s (95% CI 2.90 s\u20133.40 s, n=500) is at most 4.00 s: PASS"
    assert verdict(latency, Interval(4.5, 4.1, 4.9, 500)).outcome is Outcome.FAIL
    assert verdict(latency, Interval(3.9, 3.5, 4.2, 500)).outcome is Outcome.INCONCLUSIVE
    cost = Criterion(metric="projected_monthly_cost_usd", at_most=10_000)
    v = verdict(cost, Interval(6000.0, 5800.0, 6250.0, 1000))
    assert v.reason == (
        "projected_monthly_cost_usd $6,000/month (95% CI $5,800/month\u2013$6,250/month, n=1000) "
        "is at most $10,000/month: PASS"
    )


def test_counts_compare_the_estimate_and_still_need_min_samples() -> None:
    wau = Criterion(metric="weekly_active_users", at_least=25, min_samples=4)
    assert verdict(wau, Interval.exact(30, n=4)).outcome is Outcome.PASS
    assert verdict(wau, Interval.exact(20, n=4)).outcome is Outcome.FAIL
    v = verdict(wau, Interval.exact(30, n=2))
    assert v.outcome is Outcome.INCONCLUSIVE and "4 are needed" in v.reason


def test_confidence_of_interval_must_match_the_criterion() -> None:
    with pytest.raises(ValueError, match="confidence"):
        verdict(USEFUL, wilson(216, 240, confidence=0.90))
    strict = Criterion(metric="useful_rate", at_least=0.8, confidence=0.99)
    assert "99% CI" in verdict(strict, wilson(216, 240, confidence=0.99)).reason


def test_time_saved_verdicts_on_generated_pilots() -> None:
    # A true 25% saving, 600 tasks per group: the interval (about 0.2-0.3) clears 0.10
    # and stays below 0.40.
    rng = np.random.default_rng(21)
    baseline = rng.lognormal(math.log(600), 0.5, 600)
    treatment = rng.lognormal(math.log(450), 0.5, 600)
    ci = time_saved(baseline, treatment)
    assert verdict(Criterion(metric="time_saved_pct", at_least=0.10), ci).outcome is Outcome.PASS
    assert verdict(Criterion(metric="time_saved_pct", at_least=0.40), ci).outcome is Outcome.FAIL
    # 12 tasks per group: the same true saving is too uncertain to judge against 0.20.
    small = time_saved(baseline[:12], treatment[:12])
    assert verdict(Criterion(metric="time_saved_pct", at_least=0.20), small).outcome is Outcome.INCONCLUSIVE


def test_lock_hash_is_canonical_json_sha256() -> None:
    criteria = [Criterion.model_validate({"min_samples": 200, "at_least": 0.8, "metric": "useful_rate"})]
    expected = '[{"at_least":0.8,"metric":"useful_rate","min_samples":200}]'
    assert lock_hash(criteria) == hashlib.sha256(expected.encode()).hexdigest()


def test_lock_hash_ignores_key_order_and_spelled_out_defaults() -> None:
    a = [
        Criterion.model_validate({"metric": "useful_rate", "at_least": 0.80, "min_samples": 200}),
        Criterion.model_validate({"metric": "p95_latency_s", "at_most": 4}),
    ]
    b = [
        Criterion.model_validate({"min_samples": 200, "at_least": 0.8, "metric": "useful_rate"}),
        Criterion.model_validate({"at_most": 4.0, "metric": "p95_latency_s", "confidence": 0.95}),
    ]
    assert lock_hash(a) == lock_hash(b)


def test_lock_hash_detects_amendments_and_reordering() -> None:
    locked = [
        Criterion(metric="useful_rate", at_least=0.80, min_samples=200),
        Criterion(metric="p95_latency_s", at_most=4),
    ]
    digest = lock_hash(locked)
    amended = [Criterion(metric="useful_rate", at_least=0.75, min_samples=200), locked[1]]
    assert lock_hash(amended) != digest
    assert lock_hash([*locked, Criterion(metric="error_rate", at_most=0.02)]) != digest
    assert lock_hash(list(reversed(locked))) != digest
    segmented = [
        Criterion.model_validate(
            {"metric": "useful_rate", "at_least": 0.8, "min_samples": 200, "segment": {"department": "hr"}}
        ),
        locked[1],
    ]
    assert lock_hash(segmented) != digest
