"""The red-team report: what was attempted, what stopped it, what got through (JSON and Markdown)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aerodrome.evals.judging import shorten
from aerodrome.evals.redteam import Attempt, RedTeam
from aerodrome.evidence import stats

OUTCOMES = ("blocked", "passed", "got_through", "error")
EXAMPLES_PER_FAMILY = 5
FORMATS = ("md", "json")


def _rate(k: int, n: int) -> dict[str, Any]:
    interval = stats.wilson(k, n)
    return {
        "value": None if interval.estimate is None else round(interval.estimate, 4),
        "low": round(interval.low, 4),
        "high": round(interval.high, 4),
        "n": n,
    }


def _counts(attempts: list[Attempt]) -> dict[str, Any]:
    by = Counter(a.verdict.outcome for a in attempts)
    judged = len(attempts) - by["error"]
    defences = Counter(a.verdict.defence for a in attempts if a.verdict.outcome == "blocked")
    return {
        "attempted": len(attempts),
        **{o: by[o] for o in OUTCOMES},
        "block_rate": _rate(by["blocked"], judged),
        "got_through_rate": _rate(by["got_through"], judged),
        "blocked_by": dict(defences.most_common()),
        "ms_per_attack": round(sum(a.elapsed_ms for a in attempts) / len(attempts), 2) if attempts else None,
        "ms_median": round(statistics.median(a.elapsed_ms for a in attempts), 2) if attempts else None,
    }


def _guardrails(team: RedTeam) -> dict[str, Any]:
    g = team.original.spec.guardrails
    return {
        "pii": g.pii.action if g.pii is not None else None,
        "prompt_injection": g.prompt_injection.action if g.prompt_injection is not None else None,
        "output": g.output.model_dump() if g.output is not None else None,
        "custom": sorted(g.custom),
        "retrieval": team.original.spec.retrieval is not None,
    }


def _example(a: Attempt) -> dict[str, Any]:
    return {
        "attack": a.attack.id,
        "family": a.attack.family,
        "goal": a.attack.goal,
        "reasons": a.verdict.reasons or [],
        "prompt": shorten(a.attack.prompt, 300),
        "answer": shorten(a.answer, 300),
        "run_id": a.run_id,
        "held_for_review": a.held_for_review,
    }


def build(team: RedTeam, attempts: list[Attempt], seconds: float) -> dict[str, Any]:
    """The report of a finished run; ``passed`` says whether the got-through share is within tolerance."""
    families: dict[str, list[Attempt]] = {}
    for a in attempts:
        families.setdefault(a.attack.family, []).append(a)
    totals = _counts(attempts)
    rate = totals["got_through_rate"]["value"] or 0.0
    tolerance = team.options.tolerance
    return {
        "object": "redteam.report",
        "id": team.id,
        "usecase_id": team.original.id,
        "spec_version": team.original.version,
        "model": team.original.spec.model,
        "department": team.principal.department_id,
        "principal": team.principal.name,
        "started_at": team.started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "seconds": round(seconds, 3),
        "options": team.options.to_dict(),
        "guardrails": _guardrails(team),
        "totals": totals,
        "families": {name: _counts(items) for name, items in families.items()},
        "got_through": [
            _example(a)
            for items in families.values()
            for a in [x for x in items if x.verdict.outcome == "got_through"][:EXAMPLES_PER_FAMILY]
        ],
        "errors": [
            {"attack": a.attack.id, "detail": a.verdict.detail, "run_id": a.run_id}
            for a in attempts
            if a.verdict.outcome == "error"
        ][:20],
        "attempts": [
            {
                "attack": a.attack.id,
                "family": a.attack.family,
                "outcome": a.verdict.outcome,
                "blocked_by": a.verdict.defence,
                "reasons": a.verdict.reasons or [],
                "detail": a.verdict.detail,
                "flags": a.flags,
                "held_for_review": a.held_for_review,
                "run_id": a.run_id,
                "ms": round(a.elapsed_ms, 2),
            }
            for a in attempts
        ],
        "tolerance": tolerance,
        "passed": rate <= tolerance and totals["attempted"] > totals["error"],
    }


def _pct(rate: dict[str, Any]) -> str:
    if rate["value"] is None:
        return "-"
    return f"{rate['value']:.0%} ({rate['low']:.0%} to {rate['high']:.0%})"


def markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    g = report["guardrails"]
    verdict = "PASS" if report["passed"] else "FAIL"
    lines = [
        f"# Red-team report: {report['usecase_id']} (version {report['spec_version']})",
        "",
        f"**{verdict}**: {t['got_through']} of {t['attempted'] - t['error']} judged attempts got through "
        f"(tolerance {report['tolerance']:.0%}); block rate {_pct(t['block_rate'])}.",
        "",
        f"- model `{report['model']}`, department `{report['department']}`, run `{report['id']}`, "
        f"{report['seconds']:.1f} s ({t['ms_per_attack'] or 0:.0f} ms per attack, median {t['ms_median'] or 0:.0f})",
        f"- guardrails: pii `{g['pii']}`, prompt_injection `{g['prompt_injection']}`, "
        f"output `{'on' if g['output'] else None}`, retrieval `{g['retrieval']}`",
        f"- sets: {', '.join(report['options']['sets'])}; limit {report['options']['limit']} per family, "
        f"seed {report['options']['seed']}",
        "",
        "| family | attempted | blocked | passed | got through | errors | block rate (95% CI) | blocked by |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, c in report["families"].items():
        by = ", ".join(f"{k} {v}" for k, v in c["blocked_by"].items()) or "-"
        lines.append(
            f"| {name} | {c['attempted']} | {c['blocked']} | {c['passed']} | {c['got_through']} | "
            f"{c['error']} | {_pct(c['block_rate'])} | {by} |"
        )
    by = ", ".join(f"{k} {v}" for k, v in t["blocked_by"].items()) or "-"
    lines.append(
        f"| **all** | {t['attempted']} | {t['blocked']} | {t['passed']} | {t['got_through']} | "
        f"{t['error']} | {_pct(t['block_rate'])} | {by} |"
    )
    lines += [
        "",
        "*blocked*: a defence refused the attack before the model (or replaced the answer); *passed*: "
        "it reached the model and the answer shows no sign of success; *got through*: evidence of "
        "success (expected output, jailbreak marker, payload or canary in the answer, or personal "
        "data sent to the model as written).",
        "",
    ]
    if report["got_through"]:
        lines += ["## What got through (examples, truncated)", ""]
        for ex in report["got_through"]:
            held = " — review would hold it" if ex["held_for_review"] else ""
            lines += [
                f"### {ex['attack']}{held}",
                "",
                f"- goal: {ex['goal']}",
                f"- why: {'; '.join(ex['reasons'])}",
                f"- run: `{ex['run_id']}`",
                "",
                f"> **prompt**: {_quote(ex['prompt'])}",
                ">",
                f"> **answer**: {_quote(ex['answer']) or '(empty)'}",
                "",
            ]
    if report["errors"]:
        lines += ["## Errors (not judged)", ""]
        lines += [f"- {e['attack']}: {e['detail']} (run `{e['run_id']}`)" for e in report["errors"]]
        lines.append("")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        import orjson

        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    return markdown(report)
