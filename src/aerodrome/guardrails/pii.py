"""The PII guardrail: find personal data in a text, then detect, redact, pseudonymise or block.

Detection runs on Presidio's pattern recognizers, configured to run offline: the NLP
engine is a blank spaCy pipeline (a real spaCy model such as ``en_core_web_sm`` is used,
with its NER, only when it happens to be installed; nothing is ever downloaded) and the
email recognizer validates domains against tldextract's bundled public-suffix snapshot.
Custom regex recognizers from the configuration (employee ids, ticket numbers) run next
to them. Without Presidio the guardrail falls back to the regex scanner of
:mod:`aerodrome.knowledge.pii_scan` with the same output; :attr:`PiiGuardrail.engine` says
which one runs.

Pseudonymisation replaces each value with a placeholder (``<EMAIL_ADDRESS_1>``; the same
value gets the same placeholder within a text) and returns the mapping that
:func:`restore` uses to put the originals back into the model's answer.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aerodrome.guardrails.base import CheckResult, Finding, PiiAction
from aerodrome.guardrails.pii_recognizers import (
    NER_ENTITIES,
    PATTERN_ENTITIES,
    STRUCTURED_ENTITIES,
    build_presidio_analyzer,
    regex_findings,
)

logger = logging.getLogger(__name__)

__all__ = [
    "NER_ENTITIES",
    "PATTERN_ENTITIES",
    "STRUCTURED_ENTITIES",
    "CustomRecognizer",
    "PiiConfig",
    "PiiGuardrail",
    "presidio_available",
    "resolve_overlaps",
    "restore",
]

_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")


class CustomRecognizer(BaseModel):
    """A regex recognizer declared in the configuration (``EMP-\\d{6}`` for employee ids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The entity type it reports, UPPER_SNAKE (EMPLOYEE_ID).")
    pattern: str = Field(description="A Python regular expression.")
    score: float = Field(default=0.8, ge=0.0, le=1.0)
    context: list[str] = Field(default_factory=list, description="Words near a match that raise its score.")

    @field_validator("name")
    @classmethod
    def _upper_snake(cls, value: str) -> str:
        if not _ENTITY_NAME.match(value):
            raise ValueError(f"custom recognizer name {value!r} must be UPPER_SNAKE, e.g. EMPLOYEE_ID")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"custom recognizer pattern {value!r} is not a valid regex: {exc}") from exc
        if compiled.match(""):
            raise ValueError(f"custom recognizer pattern {value!r} matches the empty string")
        return value


class PiiConfig(BaseModel):
    """The configuration of the PII guardrail (``guardrails: {pii: {...}}`` in a use case)."""

    model_config = ConfigDict(extra="forbid")

    action: PiiAction = "detect"
    entities: list[str] | None = Field(default=None, description="Entity types to look for; None = all.")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    custom: list[CustomRecognizer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_entities(self) -> PiiConfig:
        custom_names = [c.name for c in self.custom]
        if len(set(custom_names)) != len(custom_names):
            raise ValueError("custom recognizer names must be unique")
        if self.entities is not None:
            known = set(PATTERN_ENTITIES) | set(NER_ENTITIES) | set(custom_names)
            unknown = sorted(set(self.entities) - known)
            if unknown:
                raise ValueError(f"unknown PII entity types {unknown}; known: {sorted(known)}")
        return self


class _Detector(Protocol):
    def findings(self, text: str, entities: list[str] | None, min_score: float) -> list[Finding]: ...


class _RegexDetector:
    """The fallback when Presidio is not installed: knowledge/pii_scan.py plus the custom regexes."""

    def __init__(self, custom: Iterable[CustomRecognizer]) -> None:
        self._custom = [(c.name, re.compile(c.pattern), c.score) for c in custom]

    def findings(self, text: str, entities: list[str] | None, min_score: float) -> list[Finding]:
        found = regex_findings(text)
        for name, pattern, score in self._custom:
            found.extend(
                Finding(name, m.start(), m.end(), score) for m in pattern.finditer(text) if m.group()
            )
        return [f for f in found if f.score >= min_score and (entities is None or f.kind in entities)]


class _PresidioDetector:
    def __init__(self, custom: Iterable[CustomRecognizer]) -> None:
        self._analyzer: Any = build_presidio_analyzer(
            [(c.name, c.pattern, c.score, list(c.context)) for c in custom]
        )
        self.supported: set[str] = set(self._analyzer.get_supported_entities(language="en"))

    def findings(self, text: str, entities: list[str] | None, min_score: float) -> list[Finding]:
        wanted = None if entities is None else [e for e in entities if e in self.supported]
        if wanted == []:
            return []
        results = self._analyzer.analyze(text=text, language="en", entities=wanted, score_threshold=min_score)
        return [Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results]


def presidio_available() -> bool:
    """Whether presidio-analyzer and spaCy are installed (checked without importing them)."""
    for module in ("presidio_analyzer", "spacy"):
        if sys.modules.get(module, ...) is None:  # an import blocked on purpose
            return False
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: the highest score wins, then the longest span."""
    ranked = sorted(
        (f for f in findings if f.start is not None and f.end is not None and f.end > f.start),
        key=lambda f: (-f.score, -((f.end or 0) - (f.start or 0)), f.start),
    )
    kept: list[Finding] = []
    for f in ranked:
        assert f.start is not None and f.end is not None
        if all(f.end <= (k.start or 0) or f.start >= (k.end or 0) for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start or 0)


class PiiGuardrail:
    """Finds PII and applies the configured action. The engine is built lazily, once, thread-safely."""

    name = "pii"

    def __init__(self, config: PiiConfig | None = None) -> None:
        self.config = config or PiiConfig()
        self._engine_name = "presidio" if presidio_available() else "regex"
        self._detector: _Detector | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> str:
        """``"presidio"`` or ``"regex"`` (the fallback when Presidio is not installed)."""
        return self._engine_name

    def _get_detector(self) -> _Detector:
        detector = self._detector
        if detector is None:
            with self._lock:
                detector = self._detector
                if detector is None:
                    if self._engine_name == "presidio":
                        try:
                            detector = _PresidioDetector(self.config.custom)
                        except ImportError as exc:  # installed but broken: degrade, loudly
                            logger.error(
                                "presidio-analyzer failed to import (%s): PII guardrail uses regexes", exc
                            )
                            self._engine_name = "regex"
                    if detector is None:
                        logger.warning("presidio-analyzer is not installed: PII guardrail uses regexes")
                        detector = _RegexDetector(self.config.custom)
                    self._detector = detector
        return detector

    def warm(self) -> None:
        """Build the engine now rather than on the first check."""
        self._get_detector()

    def findings(self, text: str) -> list[Finding]:
        """The PII found in the text, non-overlapping, in text order."""
        if not text:
            return []
        raw = self._get_detector().findings(text, self.config.entities, self.config.min_score)
        return resolve_overlaps(raw)

    def check(self, text: str) -> CheckResult:
        started = time.perf_counter()
        findings = self.findings(text)
        result = CheckResult(check=self.name, verdict="pass", findings=findings)
        if findings:
            result.score = max(f.score for f in findings)
            action = self.config.action
            if action == "block":
                result.verdict = "block"
            else:
                result.verdict = "flag"
                if action == "redact":
                    result.text = redact(text, findings)
                elif action == "pseudonymise":
                    result.text, result.restore = pseudonymise(text, findings)
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result


def redact(text: str, findings: Iterable[Finding]) -> str:
    """Each finding replaced by ``[ENTITY_TYPE]`` (findings must not overlap)."""
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start or 0):
        assert f.start is not None and f.end is not None
        out += [text[pos : f.start], f"[{f.kind}]"]
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


def pseudonymise(text: str, findings: Iterable[Finding]) -> tuple[str, dict[str, str]]:
    """Each value replaced by a placeholder (``<EMAIL_ADDRESS_1>``), the same value by the same one.

    Returns the new text and the mapping placeholder → original.
    """
    by_value: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    mapping: dict[str, str] = {}
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start or 0):
        assert f.start is not None and f.end is not None
        value = text[f.start : f.end]
        placeholder = by_value.get((f.kind, value))
        if placeholder is None:
            counters[f.kind] = counters.get(f.kind, 0) + 1
            placeholder = f"<{f.kind}_{counters[f.kind]}>"
            by_value[(f.kind, value)] = placeholder
            mapping[placeholder] = value
        out += [text[pos : f.start], placeholder]
        pos = f.end
    out.append(text[pos:])
    return "".join(out), mapping


def _placeholder_pattern(placeholder: str) -> str:
    """``<EMAIL_ADDRESS_1>`` → a regex tolerant of case, spacing, ``-``/``_`` and dropped brackets."""
    parts = [p for p in re.split(r"[_\s-]+", placeholder.strip("<>[]{} ")) if p]
    body = r"[\s_-]*".join(re.escape(p) for p in parts)
    return rf"(?:[<\[{{]\s*{body}\s*[>\]}}]|(?<![A-Za-z0-9]){body}(?![A-Za-z0-9]))"


def placeholder_regex(mapping: dict[str, str]) -> tuple[re.Pattern[str], list[str]]:
    """One pattern finding any of the placeholders (tolerantly), and the placeholders in the order of
    its named groups ``p0``, ``p1``…: longest first so ``<PHONE_NUMBER_12>`` is not read as
    ``<PHONE_NUMBER_1>`` followed by "2"."""
    ordered = sorted(mapping, key=len, reverse=True)
    alternatives = [f"(?P<p{i}>{_placeholder_pattern(p)})" for i, p in enumerate(ordered)]
    return re.compile("|".join(alternatives), re.IGNORECASE), ordered


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the originals back in place of the placeholders a model echoed in its answer.

    Tolerates small changes the model makes to a placeholder: case (``<email_address_1>``),
    spaces or hyphens instead of underscores, brackets dropped or swapped.
    """
    if not mapping or not text:
        return text
    combined, ordered = placeholder_regex(mapping)

    def _sub(m: re.Match[str]) -> str:
        assert m.lastgroup is not None
        return mapping[ordered[int(m.lastgroup[1:])]]

    return combined.sub(_sub, text)
