"""Personal data in an answer that the caller did not give.

The detector is the input PII guardrail's (:class:`aerodrome.guardrails.pii.PiiGuardrail`: the same
offline Presidio analyzer, the same platform recognizers), run on the answer with pseudonyms
already restored. A value found there that also occurs in what the caller sent (the inputs as
given, pseudonymised values included) is the caller's own and does not count; by default neither
does one from the retrieved passages, which the caller may read. Values are compared with case,
spaces and separators ignored (``+1 303-555-0101`` is ``+1 (303) 555 0101``).
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


def value_key(value: str) -> str:
    """A value as compared: lower case, spaces and separators removed."""
    return _SEPARATORS.sub("", value.lower())


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
        given = list(inputs) + (list(passages) if self.config.allow_passages else [])
        keys = [value_key(text) for text in given if text]
        out = []
        for f in found:
            assert f.start is not None and f.end is not None
            key = value_key(answer[f.start : f.end])
            if key and any(key in k for k in keys):
                continue
            out.append(f)
        return out
