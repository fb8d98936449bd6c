"""The contract of a guardrail check (built-in or third-party, entry-point group ``aerodrome.guardrails``).

A check reads a text and returns its findings and a verdict. Checks that can
transform the text (PII redaction or pseudonymisation) return the transformed text
and, for pseudonymisation, the mapping that restores the originals in the answer.
Findings never carry the matched text itself into run records: only type, span and score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Verdict = Literal["pass", "flag", "block"]
PiiAction = Literal["detect", "redact", "pseudonymise", "block"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # entity type (EMAIL_ADDRESS, ...) or "prompt_injection", "hidden_instruction", ...
    start: int | None
    end: int | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "start": self.start, "end": self.end, "score": round(self.score, 4)}


@dataclass(slots=True)
class CheckResult:
    check: str  # "pii", "prompt_injection", ...
    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    score: float = 0.0  # the check's overall score (e.g. injection probability)
    text: str | None = None  # the transformed text (redact / pseudonymise), None when unchanged
    restore: dict[str, str] = field(default_factory=dict)  # placeholder → original (pseudonymise)
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """What the API returns and the run records (no original values)."""
        return {
            "check": self.check,
            "verdict": self.verdict,
            "score": round(self.score, 4),
            "findings": [f.to_dict() for f in self.findings],
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


@runtime_checkable
class Guardrail(Protocol):
    name: str

    def check(self, text: str) -> CheckResult: ...
