"""Comparing two eval runs: the pass-rate difference with its interval, and what regressed.

The same cases run on both sides, so the difference is of *paired* proportions: the interval
is Newcombe's hybrid score interval for paired data (Newcombe 1998, "Improved confidence
intervals for the difference between binomial proportions based on paired data", method 10),
built from the Wilson intervals of each side (:func:`aerodrome.evidence.stats.wilson`) and
the correlation of the pairs. Only cases present in both runs are paired; the others are listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aerodrome.evidence import stats

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Difference:
    estimate: float | None  # candidate pass rate minus base pass rate, on the paired cases
    low: float
    high: float
    n: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "confidence": self.confidence,
            "method": "Newcombe hybrid score interval for paired proportions",
        }


def paired_difference(
    both: int, base_only: int, candidate_only: int, neither: int, confidence: float = CONFIDENCE
) -> Difference:
    """Interval of p(candidate passes) - p(base passes) from the 2x2 table of paired outcomes."""
    n = both + base_only + candidate_only + neither
    if n == 0:
        return Difference(None, -1.0, 1.0, 0, confidence)
    p_cand = (both + candidate_only) / n
    p_base = (both + base_only) / n
    w_cand = stats.wilson(both + candidate_only, n, confidence)
    w_base = stats.wilson(both + base_only, n, confidence)
    theta = p_cand - p_base
    denominator = (
        (both + candidate_only) * (base_only + neither) * (both + base_only) * (candidate_only + neither)
    )
    phi = 0.0
    if denominator > 0:
        phi = (both * neither - candidate_only * base_only) / math.sqrt(denominator)
        phi = max(-1.0, min(1.0, phi))
    d_low = (
        (p_cand - w_cand.low) ** 2
        - 2 * phi * (p_cand - w_cand.low) * (w_base.high - p_base)
        + (w_base.high - p_base) ** 2
    )
    d_high = (
        (w_cand.high - p_cand) ** 2
        - 2 * phi * (w_cand.high - p_cand) * (p_base - w_base.low)
        + (p_base - w_base.low) ** 2
    )
    low = max(-1.0, theta - math.sqrt(max(0.0, d_low)))
    high = min(1.0, theta + math.sqrt(max(0.0, d_high)))
    return Difference(theta, low, high, n, confidence)


def _side(run: dict[str, Any]) -> dict[str, Any]:
    return {
        k: run.get(k)
        for k in (
            "id",
            "usecase_id",
            "spec_version",
            "suite_hash",
            "alias",
            "deployment",
            "upstream_model",
            "status",
            "cases",
            "passed",
            "pass_rate",
            "curated_pass_rate",
            "live_pass_rate",
            "cost_usd",
            "latency_ms_p50",
            "latency_ms_p95",
            "created_at",
        )
    }


def _failed_assertions(result: dict[str, Any]) -> list[dict[str, Any]]:
    found = [a for a in result.get("assertions") or [] if not a.get("passed")]
    if result.get("error") and not found:
        found = [{"type": "run", "passed": False, "detail": result["error"]}]
    return found


def compare(
    base: dict[str, Any], candidate: dict[str, Any], confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """``base`` and ``candidate`` are eval runs with their ``results`` (store.get)."""
    base_results = {r["case_id"]: r for r in base.get("results") or []}
    cand_results = {r["case_id"]: r for r in candidate.get("results") or []}
    common = [c for c in base_results if c in cand_results]
    table = {"both": 0, "base_only": 0, "candidate_only": 0, "neither": 0}
    regressed: list[dict[str, Any]] = []
    fixed: list[str] = []
    for case_id in common:
        b, c = bool(base_results[case_id]["passed"]), bool(cand_results[case_id]["passed"])
        key = "both" if b and c else "base_only" if b else "candidate_only" if c else "neither"
        table[key] += 1
        if b and not c:
            regressed.append(
                {
                    "case_id": case_id,
                    "source": cand_results[case_id].get("source"),
                    "failed": _failed_assertions(cand_results[case_id]),
                    "run_id": cand_results[case_id].get("run_id"),
                }
            )
        elif c and not b:
            fixed.append(case_id)
    diff = paired_difference(
        table["both"], table["base_only"], table["candidate_only"], table["neither"], confidence
    )
    n = len(common)
    return {
        "object": "eval.comparison",
        "base": _side(base),
        "candidate": _side(candidate),
        "paired_cases": n,
        "base_pass_rate": (table["both"] + table["base_only"]) / n if n else None,
        "candidate_pass_rate": (table["both"] + table["candidate_only"]) / n if n else None,
        "difference": diff.to_dict(),
        "table": table,
        "regressed": regressed,
        "fixed": fixed,
        "only_in_base": sorted(set(base_results) - set(cand_results)),
        "only_in_candidate": sorted(set(cand_results) - set(base_results)),
        "same_suite": base.get("suite_hash") == candidate.get("suite_hash"),
        "same_spec_version": base.get("spec_version") == candidate.get("spec_version"),
    }
