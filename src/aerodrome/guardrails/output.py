"""Output validation: length, JSON Schema, banned terms, required citations, personal data, prompt leaks.

Runs on a model's answer before it reaches the caller. ``check`` returns one
finding per problem; the verdict is ``block`` when a problem is set to block and
``flag`` otherwise (a use case decides whether a flag triggers a repair attempt,
a fallback or human review). The personal-data and prompt-leak checks compare the
answer with what the model was given (:class:`AnswerSources`): values the caller
gave are the caller's own, instructions are not to be repeated.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aerodrome.guardrails.base import CheckResult, Finding
from aerodrome.guardrails.output_pii import OutputPii, OutputPiiConfig
from aerodrome.guardrails.pii import redact
from aerodrome.guardrails.prompt_leak import PromptLeakConfig, leaked_stretches

CITATION = r"\[(?:\d+|[^\[\]\n]{1,80})\]"
#: Finding kinds of the checks other than personal data (whose kinds are entity types).
VALIDATION_KINDS = frozenset({"too_long", "banned_term", "missing_citation", "schema", "prompt_leak"})


def problem_of(kind: str) -> str:
    """The problem a finding is: its own kind, or ``pii`` for an entity type."""
    return kind if kind in VALIDATION_KINDS else "pii"


@dataclass(frozen=True, slots=True)
class AnswerSources:
    """What the model was given, for the checks that compare the answer with it."""

    system: tuple[str, ...] = ()  # system messages as sent
    user: tuple[str, ...] = ()  # user messages as sent (template text, passages and inputs)
    inputs: tuple[str, ...] = ()  # the caller's inputs, as sent and as given (pseudonymised values)
    passages: tuple[str, ...] = ()  # retrieved passages


def valid_json_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema itself, when it is a valid JSON Schema (2020-12); ValueError otherwise."""
    if value is not None:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return value


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_chars: int | None = Field(default=None, ge=1, description="longest answer accepted")
    json_schema: dict[str, Any] | None = Field(default=None, description="the answer must be JSON valid here")
    banned_terms: list[str] = Field(default=[], description="words or phrases the answer must not contain")
    require_citations: bool = Field(default=False, description="the answer must cite at least one source")
    citation_pattern: str = Field(default=CITATION, description="what a citation looks like (regex)")
    pii: OutputPiiConfig | None = Field(default=None, description="personal data the caller did not give")
    prompt_leak: PromptLeakConfig | None = Field(default=None, description="instructions repeated verbatim")
    on_violation: Literal["flag", "block"] = "flag"

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return valid_json_schema(value)

    @field_validator("citation_pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"citation_pattern is not a valid regular expression: {exc}") from None
        return value


class OutputGuardrail:
    name = "output"

    def __init__(self, config: OutputConfig) -> None:
        self.config = config
        self._validator = Draft202012Validator(config.json_schema) if config.json_schema is not None else None
        self._citation = re.compile(config.citation_pattern)
        terms = sorted({t.strip() for t in config.banned_terms if t.strip()}, key=len, reverse=True)
        self._banned = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
            if terms
            else None
        )
        self._pii = OutputPii(config.pii) if config.pii is not None else None
        leak = config.prompt_leak
        self._leak = leak if leak is not None and leak.enabled else None

    def warm(self) -> None:
        """Build the personal-data engine now rather than on the first answer."""
        if self._pii is not None:
            self._pii.warm()

    def parse_json(self, text: str) -> Any:
        """The answer as JSON (a fenced ```json block is accepted), or raises ValueError."""
        body = text.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
        if fenced:
            body = fenced.group(1)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the answer is not JSON: {exc}") from None

    def schema_errors(self, text: str) -> list[str]:
        """Why the answer does not match the schema (empty when it does, or when there is no schema)."""
        if self._validator is None:
            return []
        try:
            data = self.parse_json(text)
        except ValueError as exc:
            return [str(exc)]
        return [
            f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
            for err in sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        ][:20]

    def check(self, text: str, sources: AnswerSources | None = None) -> CheckResult:
        """The answer's findings; ``text`` of the result is the answer redacted (``pii.action: redact``)."""
        started = time.perf_counter()
        findings: list[Finding] = []
        cfg = self.config
        src = sources or AnswerSources()
        redacted: str | None = None
        blocking = False
        if cfg.max_chars is not None and len(text) > cfg.max_chars:
            findings.append(Finding("too_long", cfg.max_chars, len(text), 1.0))
        if self._banned is not None:
            findings += [Finding("banned_term", m.start(), m.end(), 1.0) for m in self._banned.finditer(text)]
        if cfg.require_citations and not self._citation.search(text):
            findings.append(Finding("missing_citation", None, None, 1.0))
        if self.schema_errors(text):
            findings.append(Finding("schema", None, None, 1.0))
        if self._leak is not None:
            instructions = src.system + (src.user if self._leak.user_template else ())
            leaks = leaked_stretches(
                text, instructions, src.inputs + src.passages, min_chars=self._leak.min_chars
            )
            findings += leaks
            blocking = blocking or bool(leaks and self._leak.action == "block")
        if self._pii is not None:
            personal = self._pii.findings(text, src.inputs, src.passages)
            findings += personal
            if personal and self._pii.config.action == "redact":
                redacted = redact(text, personal)
            blocking = blocking or bool(personal and self._pii.config.action == "block")
        verdict = "pass" if not findings else "block" if blocking else cfg.on_violation
        return CheckResult(
            check=self.name,
            verdict=verdict,
            findings=findings,
            score=1.0 if findings else 0.0,
            text=redacted,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def blocking(self, problem: str) -> bool:
        """Whether a problem of this kind replaces the answer whatever ``on_violation`` says."""
        if problem == "pii":
            return self._pii is not None and self._pii.config.action == "block"
        if problem == "prompt_leak":
            return self._leak is not None and self._leak.action == "block"
        return False

    def redacts(self, problem: str) -> bool:
        """Whether a problem of this kind is remedied in the answer (redacted) rather than a violation."""
        return problem == "pii" and self._pii is not None and self._pii.config.action == "redact"
