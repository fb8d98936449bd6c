"""A use case's guardrails applied to a run: inputs before the model, retrieved passages, the answer.

Each result is kept (without matched values) for the run record; a ``block`` verdict on an
input refuses the run with 422 ``guardrail_blocked`` naming the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aerodrome.errors import UnprocessableInput
from aerodrome.guardrails.base import CheckResult
from aerodrome.guardrails.injection import hidden_instructions
from aerodrome.guardrails.output import OutputGuardrail
from aerodrome.guardrails.pii import restore
from aerodrome.usecases.registry import LiveUseCase

_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")


@dataclass(slots=True)
class GuardLog:
    results: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    restore: dict[str, str] = field(default_factory=dict)  # placeholder → original, across inputs
    pii_sent: bool = False  # PII went to the model as is (action detect)

    def add(self, result: CheckResult, **where: Any) -> None:
        self.results.append({**result.to_dict(), **where})
        if result.verdict == "flag":
            self.flags.append(f"flagged:{result.check}")

    def restore_text(self, text: str) -> str:
        return restore(text, self.restore)


def _merge_placeholders(text: str, mapping: dict[str, str], into: dict[str, str]) -> str:
    """Renumber this input's placeholders so they never collide with earlier inputs'; same value, same one."""
    by_value = {v: k for k, v in into.items()}
    renames: dict[str, str] = {}
    for placeholder, value in mapping.items():
        if value in by_value:
            renames[placeholder] = by_value[value]
            continue
        target = placeholder
        m = _PLACEHOLDER.fullmatch(placeholder)
        n = int(m.group(2)) if m else 1
        while target in into and m is not None:
            n += 1
            target = f"<{m.group(1)}_{n}>"
        into[target] = value
        by_value[value] = target
        renames[placeholder] = target
    if all(k == v for k, v in renames.items()):
        return text
    return _PLACEHOLDER.sub(lambda m: renames.get(m.group(0), m.group(0)), text)


def guard_inputs(live: LiveUseCase, values: dict[str, Any], log: GuardLog) -> dict[str, Any]:
    """The inputs as the model may see them (redacted or pseudonymised); 422 on a block."""
    out = dict(values)
    checks = [(name, guard) for name, guard in live.guards.items() if name != "output"]
    if not checks:
        return out
    for input_name, value in values.items():
        if not isinstance(value, str) or not value:
            continue
        for check_name, guard in checks:
            result = guard.check(out[input_name])
            log.add(result, input=input_name)
            if result.verdict == "block":
                raise UnprocessableInput(
                    f"inputs.{input_name}: refused by the {check_name} guardrail "
                    f"({', '.join(sorted({f.kind for f in result.findings})) or 'policy'})",
                    param=f"inputs.{input_name}",
                    code="guardrail_blocked",
                )
            if result.text is not None:
                out[input_name] = _merge_placeholders(result.text, result.restore, log.restore)
            elif check_name == "pii" and result.findings:
                log.pii_sent = True
    return out


def screen_passages(passages: list[dict[str, Any]], setting: str, log: GuardLog) -> list[dict[str, Any]]:
    """Drop (or flag) retrieved passages that carry instructions hidden for the model."""
    if setting == "off":
        return passages
    kept = []
    for passage in passages:
        findings = hidden_instructions(passage.get("text") or "")
        strong = [f for f in findings if f.score >= 0.8]
        if not strong:
            kept.append(passage)
            continue
        log.results.append(
            {
                "check": "hidden_instructions",
                "verdict": "flag" if setting == "flag" else "block",
                "score": max(f.score for f in strong),
                "findings": [f.to_dict() for f in strong],
                "chunk_id": passage.get("chunk_id"),
                "action": "kept" if setting == "flag" else "dropped",
            }
        )
        log.flags.append("flagged:hidden_instructions")
        if setting == "flag":
            kept.append(passage)
    return kept


def output_problems(guard: OutputGuardrail | None, text: str, log: GuardLog) -> tuple[list[str], list[str]]:
    """(schema errors, other problems) of an answer; the result is logged."""
    if guard is None:
        return [], []
    result = guard.check(text)
    log.results.append({**result.to_dict(), "stage": "output"})  # flags: the runner decides, after repair
    kinds = [f.kind for f in result.findings]
    schema = guard.schema_errors(text) if "schema" in kinds else []
    return schema, [k for k in kinds if k != "schema"]
