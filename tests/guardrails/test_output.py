"""Output validation: length, JSON Schema, banned terms, citations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aerodrome.guardrails.output import OutputConfig, OutputGuardrail

SCHEMA = {
    "type": "object",
    "required": ["clause", "party"],
    "properties": {"clause": {"type": "string"}, "party": {"type": "string"}, "amount": {"type": "number"}},
    "additionalProperties": False,
}


def kinds(text: str, **cfg: object) -> list[str]:
    return [f.kind for f in OutputGuardrail(OutputConfig(**cfg)).check(text).findings]  # type: ignore[arg-type]


def test_clean_answer_passes() -> None:
    result = OutputGuardrail(OutputConfig(max_chars=100, require_citations=True)).check("16 weeks [1].")
    assert result.verdict == "pass" and result.findings == []


def test_length_banned_terms_and_citations() -> None:
    assert kinds("x" * 11, max_chars=10) == ["too_long"]
    found = OutputGuardrail(OutputConfig(banned_terms=["guaranteed", "legal advice"])).check(
        "This is Legal Advice, guaranteed. Not guaranteedly."
    )
    assert [(f.kind, f.start) for f in found.findings] == [("banned_term", 8), ("banned_term", 22)]
    assert kinds("No source here.", require_citations=True) == ["missing_citation"]
    assert kinds("See [leave-policy.md] for more.", require_citations=True) == []


def test_json_schema_validation() -> None:
    guard = OutputGuardrail(OutputConfig(json_schema=SCHEMA, on_violation="block"))
    assert guard.check('{"clause": "4.2", "party": "Acme"}').verdict == "pass"
    assert guard.check('```json\n{"clause": "4.2", "party": "Acme", "amount": 10}\n```').verdict == "pass"
    bad = guard.check('{"clause": 4, "extra": true}')
    assert bad.verdict == "block" and [f.kind for f in bad.findings] == ["schema"]
    errors = guard.schema_errors('{"clause": 4, "extra": true}')
    assert any("clause" in e for e in errors) and any("party" in e for e in errors)
    assert guard.schema_errors("not json")[0].startswith("the answer is not JSON")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        OutputConfig(json_schema={"type": "nonsense"})
    with pytest.raises(ValidationError, match="regular expression"):
        OutputConfig(citation_pattern="[unclosed")
    with pytest.raises(ValidationError):
        OutputConfig(max_chars=0)
