"""Personal data in an answer that the caller did not give.

The detector is the input PII guardrail's (:class:`aerodrome.guardrails.pii.PiiGuardrail`: the same
offline Presidio analyzer, the same platform recognizers), run on the answer with pseudonyms
already restored. A value found there that also occurs in what the caller sent (the inputs as
given, pseudonymised values included) is the caller's own and does not count; by default neither
does one from the retrieved passages, which the caller may read. Values are compared whole, with
case, spaces and separators ignored (``+1 303-555-0101`` is ``+1 (303) 555 0101``; ``10.0.0.1`` is
not in ``10.0.0.12``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aerodrome.guardrails.base import Finding
from aerodrome.guardrails.pii import (
    NER_ENTITIES,
    PATTERN_ENTITIES,
    STRUCTURED_ENTITIES,
    CustomRecognizer,
    PiiConfig,
    PiiGuardrail,
)

OutputPiiAction = Literal["flag", "redact", "block"]
_SEPARATORS = re.compile(r"[\W_]+")


class OutputPiiConfig(BaseModel):
    """``guardrails.output.pii`` of a use case."""

    model_config = ConfigDict(extra="forbid")

    action: OutputPiiAction = Field(
        default="flag",
        description="flag: a violation (on_violation decides); redact: [EMAIL_ADDRESS] in the answer, "
        "flagged; block: the answer is replaced",
    )
    entities: list[str] | None = Field(
        default=None,
        description="entity types looked for; default: the structured ones and the custom recognizers'",
    )
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    allow_passages: bool = Field(
        default=True,
        description="values also in the retrieved passages (the caller may read them) do not count",
    )
    custom: list[CustomRecognizer] = Field(default_factory=list, description="extra regex recognizers")

    @model_validator(mode="after")
    def _known_entities(self) -> OutputPiiConfig:
        names = [c.name for c in self.custom]
        if len(set(names)) != len(names):
            raise ValueError("custom recognizer names must be unique")
        if self.entities is not None:
            known = {*PATTERN_ENTITIES, *NER_ENTITIES, *names}
            unknown = sorted(set(self.entities) - known)
            if unknown:
                raise ValueError(f"unknown PII entity types {unknown}; known: {sorted(known)}")
        return self

    def detector_config(self) -> PiiConfig:
        entities = self.entities
        if entities is None:
            entities = [*STRUCTURED_ENTITIES, *(c.name for c in self.custom)]
        return PiiConfig(action="detect", entities=entities, min_score=self.min_score, custom=self.custom)


def value_pattern(value: str) -> re.Pattern[str] | None:
    """The value anywhere in a text, whatever its case and separators, as a whole (``10.0.0.1`` is
    not in ``10.0.0.12``); None for a value without letters or digits."""
    chunks = [c for c in _SEPARATORS.split(value) if c]
    if not chunks:
        return None
    body = r"[\W_]*".join(re.escape(c) for c in chunks)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])", re.IGNORECASE)


class OutputPii:
    def __init__(self, config: OutputPiiConfig) -> None:
        self.config = config
        self.detector = PiiGuardrail(config.detector_config())

    def warm(self) -> None:
        self.detector.warm()

    def findings(
        self, answer: str, inputs: Iterable[str] = (), passages: Iterable[str] = ()
    ) -> list[Finding]:
        """Personal data in the answer, without the values the caller gave (or may read in the passages)."""
        found = self.detector.findings(answer)
        if not found:
            return []
        given = [t for t in (*inputs, *(passages if self.config.allow_passages else ())) if t]
        out = []
        for f in found:
            assert f.start is not None and f.end is not None
            pattern = value_pattern(answer[f.start : f.end])
            if pattern is not None and any(pattern.search(text) for text in given):
                continue  # the caller's own (or readable in the passages)
            out.append(f)
        return out
