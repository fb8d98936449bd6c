"""Red flags and the recommendation, from verdicts and metrics with known answers."""

from __future__ import annotations

from typing import Any

from aerodrome.evidence.assessment import judge_criteria, recommend, red_flags
from aerodrome.evidence.criteria import Criterion
from aerodrome.evidence.stats import Interval, wilson

USEFUL = Criterion(metric="useful_rate", at_least=0.8, min_samples=100)
FAST = Criterion(metric="p95_latency_s", at_most=4.0, min_samples=100)
SAVED = Criterion(metric="time_saved_pct", at_least=0.2, min_samples=30)


def _judge(values: dict[str, Interval]) -> Any:
    return judge_criteria([USEFUL, FAST, SAVED], lambda c: values[c.metric])


def _flags(**kw: Any) -> Any:
    base: dict[str, Any] = {
        "amendments": 0,
        "concentration": {"runs": 0.2, "positive_ratings": 0.25, "users": 20},
        "cohorts": {"volunteer": 5, "assigned": 15},
        "tasks_per_day": 100.0,
        "retention": wilson(15, 20),
        "groups": {"baseline": 40, "treatment": 40},
        "needs_timing": True,
        "evaluated": True,
    }
    base.update(kw)
    return red_flags(**base)


def test_all_pass_and_no_severe_flag_is_go() -> None:
    verdicts = _judge(
        {
            "useful_rate": wilson(230, 250),
            "p95_latency_s": Interval(2.0, 1.8, 2.3, 400),
            "time_saved_pct": Interval(0.3, 0.24, 0.36, 60),
        }
    )
    assert [v.outcome.value for v in verdicts] == ["PASS", "PASS", "PASS"]
    assert recommend(verdicts, _flags())[0] == "go"


def test_a_severe_flag_turns_go_into_redesign() -> None:
    verdicts = _judge(
        {
            "useful_rate": wilson(230, 250),
            "p95_latency_s": Interval(2.0, 1.8, 2.3, 400),
            "time_saved_pct": Interval(0.3, 0.24, 0.36, 60),
        }
    )
    flags = _flags(concentration={"runs": 0.3, "positive_ratings": 0.8, "users": 12})
    assert [f.code for f in flags] == ["concentration"]
    choice, reasons = recommend(verdicts, flags)
    assert choice == "redesign" and any("positive ratings" in r for r in reasons)


def test_failures_give_redesign_or_stop_and_too_few_samples_are_inconclusive() -> None:
    one_fails = _judge(
        {
            "useful_rate": wilson(120, 250),
            "p95_latency_s": Interval(2.0, 1.8, 2.3, 400),
            "time_saved_pct": Interval(0.3, 0.24, 0.36, 60),
        }
    )
    assert [v.outcome.value for v in one_fails] == ["FAIL", "PASS", "PASS"]
    assert recommend(one_fails, _flags())[0] == "redesign"
    most_fail = _judge(
        {
            "useful_rate": wilson(120, 250),
            "p95_latency_s": Interval(9.0, 8.0, 10.0, 400),
            "time_saved_pct": Interval(0.3, 0.24, 0.36, 60),
        }
    )
    assert recommend(most_fail, _flags())[0] == "stop"
    few = _judge(
        {
            "useful_rate": wilson(9, 10),
            "p95_latency_s": Interval(2.0, 1.8, 2.3, 400),
            "time_saved_pct": Interval(0.3, 0.24, 0.36, 60),
        }
    )
    assert few[0].outcome.value == "INCONCLUSIVE"
    choice, reasons = recommend(few, _flags())
    assert choice == "redesign" and "not produced enough evidence" in reasons[-1]
    assert recommend([], _flags())[0] == "redesign"


def test_each_red_flag() -> None:
    codes = lambda **kw: [f.code for f in _flags(**kw)]  # noqa: E731
    assert codes() == []
    assert codes(amendments=2) == ["criteria_amended"]
    assert codes(cohorts={"volunteer": 7}) == ["all_volunteers"]
    assert codes(tasks_per_day=None) == ["no_projected_volume"]
    assert codes(retention=wilson(2, 20)) == ["low_retention"]
    assert codes(retention=wilson(0, 3)) == []  # too few users to judge retention
    assert codes(groups={"treatment": 40}) == ["no_baseline"]
    assert codes(groups={"control": 10, "treatment": 40}) == []
    assert codes(groups={}, needs_timing=False) == []
    assert codes(evaluated=False) == ["no_evaluation"]
    assert codes(live_evaluated=False) == ["curated_only_evaluation"]
    assert codes(evaluated=False, live_evaluated=False) == ["no_evaluation"]
    assert codes(concentration={"runs": 0.9, "positive_ratings": 0.1, "users": 10}) == ["concentration"]
