"""Output validation: length, JSON Schema, banned terms, required citations.

Runs on a model's answer before it reaches the caller. ``check`` returns one
finding per problem; the verdict is ``block`` when a problem is set to block and
``flag`` otherwise (a use case decides whether a flag triggers a repair attempt,
a fallback or human review).
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aerodrome.guardrails.base import CheckResult, Finding

CITATION = r"\[(?:\d+|[^\[\]\n]{1,80})\]"


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

    def check(self, text: str) -> CheckResult:
        started = time.perf_counter()
        findings: list[Finding] = []
        cfg = self.config
        if cfg.max_chars is not None and len(text) > cfg.max_chars:
            findings.append(Finding("too_long", cfg.max_chars, len(text), 1.0))
        if self._banned is not None:
            findings += [Finding("banned_term", m.start(), m.end(), 1.0) for m in self._banned.finditer(text)]
        if cfg.require_citations and not self._citation.search(text):
            findings.append(Finding("missing_citation", None, None, 1.0))
        if self.schema_errors(text):
            findings.append(Finding("schema", None, None, 1.0))
        verdict = "pass" if not findings else cfg.on_violation
        return CheckResult(
            check=self.name,
            verdict=verdict,
            findings=findings,
            score=1.0 if findings else 0.0,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
