"""A use case's guardrails applied to a run: inputs before the model, retrieved passages, the answer.

Each result is kept (without matched values) for the run record; a ``block`` verdict on an
input refuses the run with 422 ``guardrail_blocked`` naming the input. The answer's checks
(:func:`output_problems`) see what the model was given (:func:`answer_sources`), so that the
caller's own data and the passages do not count as leaks.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from aerodrome.errors import UnprocessableInput
from aerodrome.guardrails.base import CheckResult
from aerodrome.guardrails.injection import hidden_instructions
from aerodrome.guardrails.output import AnswerSources, OutputGuardrail, problem_of
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


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return [] if value is None else [str(value)]


def _message_text(content: Any) -> list[str]:
    """A message's text: a string, or the ``text`` of its content parts."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def answer_sources(
    body: dict[str, Any], prepared: dict[str, Any], passages: list[dict[str, Any]], log: GuardLog
) -> AnswerSources:
    """What the model was given (messages as sent), what the caller gave, what was retrieved."""
    by_role: dict[str, list[str]] = {"system": [], "user": []}
    for message in body.get("messages") or ():
        role = message.get("role")
        if role in ("system", "developer"):
            by_role["system"] += _message_text(message.get("content"))
        elif role == "user":
            by_role["user"] += _message_text(message.get("content"))
    return AnswerSources(
        system=tuple(by_role["system"]),
        user=tuple(by_role["user"]),
        inputs=(*_strings(prepared), *log.restore.values()),
        passages=tuple(str(p.get("text") or "") for p in passages),
    )


@dataclass(slots=True)
class AnswerCheck:
    """The answer's checks: its text (redacted where set), schema errors, and what to do."""

    text: str
    schema_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # violations: on_violation decides
    blocked: str | None = None  # a problem set to block: the answer is replaced whatever on_violation says
    redacted: bool = False  # personal data replaced by [TYPE] markers (flagged, kept)

    @property
    def flagged(self) -> bool:
        return bool(self.problems or self.blocked or self.redacted)

    def replaced_by(self, on_violation: str) -> str | None:
        """The problem that replaces the answer with the fallback, if one does."""
        if self.blocked is not None:
            return self.blocked
        if self.problems and on_violation == "fallback":
            return self.problems[0]
        return None


def output_problems(
    guard: OutputGuardrail | None, text: str, log: GuardLog, sources: AnswerSources | None = None
) -> AnswerCheck:
    """The answer checked (against ``sources``: what the model was given); the result is logged."""
    if guard is None:
        return AnswerCheck(text)
    result = guard.check(text, sources)
    entry: dict[str, Any] = {**result.to_dict(), "stage": "output"}
    problems = list(dict.fromkeys(problem_of(f.kind) for f in result.findings))
    checked = AnswerCheck(text if result.text is None else result.text)
    checked.schema_errors = guard.schema_errors(text) if "schema" in problems else []
    for problem in problems:
        if problem == "schema":
            continue
        if guard.blocking(problem):
            checked.blocked = checked.blocked or problem
        elif guard.redacts(problem):
            checked.redacted = True
            entry["action"] = "redacted"
        else:
            checked.problems.append(problem)
    log.results.append(entry)  # flags: the runner decides, after repair
    return checked


async def check_answer(
    guard: OutputGuardrail | None, text: str, log: GuardLog, sources: AnswerSources
) -> AnswerCheck:
    """:func:`output_problems`, in a worker thread when the personal-data detector runs (milliseconds
    of CPU: the event loop keeps serving other calls meanwhile)."""
    if guard is not None and guard.config.pii is not None:
        return await asyncio.to_thread(output_problems, guard, text, log, sources)
    return output_problems(guard, text, log, sources)
