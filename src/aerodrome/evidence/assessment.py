"""Judging a pilot: criteria verdicts, red flags and the go / redesign / stop recommendation.

Pure functions over metric sets (no database): :mod:`aerodrome.evidence.report` gathers the
inputs, this module decides, so the rules can be tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aerodrome.evidence.criteria import Criterion, Outcome, Verdict, verdict
from aerodrome.evidence.stats import CONCENTRATION_FLAG, Interval

LOW_RETENTION = 0.40  # under this 4-week retention (with enough users) the pilot's use does not stick
MIN_USERS_FOR_RETENTION = 5


@dataclass(frozen=True, slots=True)
class RedFlag:
    code: str
    message: str
    severe: bool  # a severe flag keeps a "go" from being recommended

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "severe": self.severe}


@dataclass(slots=True)
class Judgement:
    verdicts: list[Verdict]
    red_flags: list[RedFlag] = field(default_factory=list)
    recommendation: str = "redesign"  # go | redesign | stop
    reasons: list[str] = field(default_factory=list)


def judge_criteria(criteria: list[Criterion], metrics_for: Callable[[Criterion], Interval]) -> list[Verdict]:
    return [verdict(c, metrics_for(c)) for c in criteria]


def red_flags(
    *,
    amendments: int,
    concentration: dict[str, Any],
    cohorts: dict[str, int],
    tasks_per_day: float | None,
    retention: Interval,
    groups: dict[str, int],
    needs_timing: bool,
    evaluated: bool,
    live_evaluated: bool = True,
) -> list[RedFlag]:
    """The known traps of pilots (DESIGN.md), each with the evidence that raised it."""
    flags: list[RedFlag] = []
    if amendments:
        flags.append(
            RedFlag(
                "criteria_amended",
                f"the success criteria were changed {amendments} time(s) after the pilot started; "
                "the verdicts below use the criteria locked at the start",
                True,
            )
        )
    users = int(concentration.get("users") or 0)
    ratings_share = concentration.get("positive_ratings")
    runs_share = concentration.get("runs")
    if users and isinstance(ratings_share, int | float) and ratings_share > CONCENTRATION_FLAG:
        flags.append(
            RedFlag(
                "concentration",
                f"{ratings_share:.0%} of the positive ratings come from the top two of {users} users",
                True,
            )
        )
    elif users and isinstance(runs_share, int | float) and runs_share > CONCENTRATION_FLAG:
        flags.append(
            RedFlag(
                "concentration", f"{runs_share:.0%} of the runs come from the top two of {users} users", True
            )
        )
    active = sum(cohorts.values())
    if active and cohorts.get("volunteer", 0) == active:
        flags.append(
            RedFlag(
                "all_volunteers",
                f"all {active} active pilot users are volunteers: enthusiasts, not the population that would use it",
                True,
            )
        )
    if not tasks_per_day:
        flags.append(
            RedFlag(
                "no_projected_volume", "no projected volume: the cost at production volume is unknown", True
            )
        )
    if (
        retention.estimate is not None
        and retention.n >= MIN_USERS_FOR_RETENTION
        and retention.estimate < LOW_RETENTION
    ):
        flags.append(
            RedFlag(
                "low_retention",
                f"only {retention.estimate:.0%} of users came back four weeks after their first use (n={retention.n})",
                False,
            )
        )
    if needs_timing and not (groups.get("baseline") or groups.get("control")):
        flags.append(
            RedFlag("no_baseline", "no baseline or control tasks: time saved cannot be measured", True)
        )
    if not evaluated:
        flags.append(
            RedFlag(
                "no_evaluation",
                "no evaluation suite has run, so curated and live inputs cannot be compared",
                False,
            )
        )
    elif not live_evaluated:
        flags.append(
            RedFlag(
                "curated_only_evaluation",
                "evaluated only on curated inputs: the suite has no live-like cases (add some with "
                "`aerodrome eval cases-from-feedback`), so its pass rate may not hold on real use",
                False,
            )
        )
    return flags


def recommend(verdicts: list[Verdict], flags: list[RedFlag]) -> tuple[str, list[str]]:
    """go only when every criterion passes and no severe flag stands; stop when most fail."""
    failed = [v for v in verdicts if v.outcome is Outcome.FAIL]
    unclear = [v for v in verdicts if v.outcome is Outcome.INCONCLUSIVE]
    passed = [v for v in verdicts if v.outcome is Outcome.PASS]
    severe = [f for f in flags if f.severe]
    reasons: list[str] = []
    if not verdicts:
        return "redesign", ["no success criteria were set, so the pilot cannot show success"]
    if failed and len(failed) * 2 >= len(verdicts):
        reasons += [f"FAIL: {v.reason}" for v in failed]
        reasons.append(f"{len(failed)} of {len(verdicts)} criteria failed")
        return "stop", reasons
    if failed:
        reasons += [f"FAIL: {v.reason}" for v in failed]
        reasons += [f"PASS: {v.reason}" for v in passed]
        reasons.append("some criteria pass: change what fails and pilot the new version")
        return "redesign", reasons
    if unclear:
        reasons += [f"INCONCLUSIVE: {v.reason}" for v in unclear]
        reasons.append("the pilot has not produced enough evidence: extend it or redesign its measurement")
        return "redesign", reasons
    if severe:
        reasons.append("every criterion passes, but the evidence has flaws:")
        reasons += [f.message for f in severe]
        return "redesign", reasons
    reasons += [f"PASS: {v.reason}" for v in passed]
    return "go", reasons
