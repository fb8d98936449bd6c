"""The PII guardrail: detection spans, custom recognizers, actions, restore, offline, fallback."""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

import pytest

from aerodrome.guardrails import pii as pii_module
from aerodrome.guardrails.base import CheckResult, Finding, Guardrail
from aerodrome.guardrails.pii import (
    CustomRecognizer,
    PiiConfig,
    PiiGuardrail,
    presidio_available,
    resolve_overlaps,
    restore,
)

needs_presidio = pytest.mark.skipif(not presidio_available(), reason="presidio-analyzer is not installed")


@pytest.fixture(scope="module")
def guard() -> PiiGuardrail:
    g = PiiGuardrail(PiiConfig())
    g.warm()
    return g


def _spans(g: PiiGuardrail, text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in g.findings(text)]


CASES = [
    ("EMAIL_ADDRESS", "Write to jane.doe+hr@example.co.uk today.", "jane.doe+hr@example.co.uk"),
    ("PHONE_NUMBER", "Call me at (555) 123-4567 tomorrow.", "(555) 123-4567"),
    ("PHONE_NUMBER", "My mobile: +44 20 7946 0958.", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "Desk: 986.291.2294x751", "986.291.2294x751"),
    ("PHONE_NUMBER", "Please call me on 027 896 92 86 about it", "027 896 92 86"),
    ("CREDIT_CARD", "Card 4111 1111 1111 1111 was declined.", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "What is the limit for card 501864667909?", "501864667909"),
    ("IBAN_CODE", "Pay to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32"),
    ("US_SSN", "His social security number is 531-21-7351", "531-21-7351"),
    ("IP_ADDRESS", "The server at 192.168.10.20 is down.", "192.168.10.20"),
    ("IP_ADDRESS", "Reach it on 2001:db8::8a2e:370:7334 now.", "2001:db8::8a2e:370:7334"),
]


@needs_presidio
@pytest.mark.parametrize(("kind", "text", "value"), CASES)
def test_each_supported_entity_is_found_with_its_span(
    guard: PiiGuardrail, kind: str, text: str, value: str
) -> None:
    findings = guard.findings(text)
    start = text.index(value)
    assert any(f.kind == kind and (f.start, f.end) == (start, start + len(value)) for f in findings), findings
    assert all(0.0 < f.score <= 1.0 for f in findings)


@pytest.mark.parametrize(
    "text",
    [
        "Our offices are located at 9543 1819 St. John Street, Tubize.",  # a house number, not a phone
        "The meeting is on 2024-01-05 at 10:30 in room 4.",
        "Version 1.2.3 of the tool (not 300.1.2.4); order 12345 shipped.",
        "Card 4111 1111 1111 1112 fails the Luhn check.",
        "See config-reference.md and aerodrome/hookspecs.py for details.",
    ],
)
def test_ordinary_numbers_are_not_structured_pii(guard: PiiGuardrail, text: str) -> None:
    kinds = {f.kind for f in guard.findings(text)}
    assert not kinds & {"PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "US_SSN", "URL"}


def test_the_guardrail_meets_the_contract(guard: PiiGuardrail) -> None:
    assert isinstance(guard, Guardrail)
    assert guard.name == "pii"
    assert guard.engine == ("presidio" if presidio_available() else "regex")
    result = guard.check("nothing to see here")
    assert (result.verdict, result.findings, result.text, result.restore) == ("pass", [], None, {})


def test_custom_recognizer_finds_employee_ids() -> None:
    config = PiiConfig(custom=[CustomRecognizer(name="EMPLOYEE_ID", pattern=r"EMP-\d{6}", score=0.9)])
    g = PiiGuardrail(config)
    text = "Ask EMP-123456 (not emp-654321 or EMP-12345) about it."
    assert _spans(g, text) == [("EMPLOYEE_ID", "EMP-123456")]
    assert g.findings(text)[0].score == pytest.approx(0.9)


def test_entities_restrict_what_is_reported() -> None:
    g = PiiGuardrail(PiiConfig(entities=["EMAIL_ADDRESS"]))
    assert _spans(g, "a@example.com, 192.168.1.1") == [("EMAIL_ADDRESS", "a@example.com")]


def test_redact_replaces_each_span_with_its_type() -> None:
    g = PiiGuardrail(PiiConfig(action="redact"))
    result = g.check("Mail jane@example.com or call (555) 123-4567.")
    assert result.verdict == "flag"
    assert result.text == "Mail [EMAIL_ADDRESS] or call [PHONE_NUMBER]."
    assert [f.kind for f in result.findings] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]


def test_pseudonymise_uses_one_placeholder_per_value() -> None:
    g = PiiGuardrail(PiiConfig(action="pseudonymise"))
    text = "jane@example.com wrote to bob@example.com; reply to jane@example.com."
    result = g.check(text)
    assert result.verdict == "flag"
    assert result.text == "<EMAIL_ADDRESS_1> wrote to <EMAIL_ADDRESS_2>; reply to <EMAIL_ADDRESS_1>."
    assert result.restore == {"<EMAIL_ADDRESS_1>": "jane@example.com", "<EMAIL_ADDRESS_2>": "bob@example.com"}
    assert restore(result.text, result.restore) == text
    # the run record never carries the values
    assert "jane" not in str(result.to_dict())


@pytest.mark.parametrize(
    "answer",
    [
        "Sure, I emailed <EMAIL_ADDRESS_1>.",
        "Sure, I emailed <email_address_1>.",
        "Sure, I emailed < Email Address 1 >.",
        "Sure, I emailed [EMAIL_ADDRESS_1].",
        "Sure, I emailed EMAIL_ADDRESS_1.",
        "Sure, I emailed <EMAIL-ADDRESS-1>.",
    ],
)
def test_restore_tolerates_altered_placeholders(answer: str) -> None:
    assert restore(answer, {"<EMAIL_ADDRESS_1>": "jane@example.com"}) == "Sure, I emailed jane@example.com."


def test_restore_keeps_numbered_placeholders_apart() -> None:
    mapping = {f"<PHONE_NUMBER_{i}>": f"+1 555 000 {i:04d}" for i in range(1, 13)}
    assert restore("<PHONE_NUMBER_1>, <phone_number_12>", mapping) == "+1 555 000 0001, +1 555 000 0012"
    assert restore("no placeholders", mapping) == "no placeholders"
    assert restore("EMAIL_ADDRESS_1x stays", {"<EMAIL_ADDRESS_1>": "a@b.co"}) == "EMAIL_ADDRESS_1x stays"


def test_block_action_blocks() -> None:
    result = PiiGuardrail(PiiConfig(action="block")).check("SSN: 531-21-7351")
    assert result.verdict == "block"
    assert result.text is None
    assert result.score > 0.5


def test_overlapping_findings_keep_highest_score_then_longest() -> None:
    findings = [
        Finding("PHONE_NUMBER", 10, 22, 0.6),
        Finding("US_SSN", 10, 21, 0.85),
        Finding("URL", 30, 40, 0.5),
        Finding("EMAIL_ADDRESS", 25, 40, 0.5),
        Finding("DATE_TIME", 50, 55, 0.6),
    ]
    assert resolve_overlaps(findings) == [findings[1], findings[3], findings[4]]


def test_email_inside_a_url_like_text_is_reported_once(guard: PiiGuardrail) -> None:
    found = guard.findings("contact: jane@example.com")
    assert [(f.kind, f.start, f.end) for f in found] == [("EMAIL_ADDRESS", 9, 25)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "EMPLOYEE_ID", "pattern": "EMP-(\\d{6}"}, "not a valid regex"),
        ({"name": "employee id", "pattern": "EMP-\\d{6}"}, "UPPER_SNAKE"),
        ({"name": "EMPTY", "pattern": "x*"}, "empty string"),
    ],
)
def test_invalid_custom_recognizers_are_refused_at_load(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiiConfig(custom=[fields])  # type: ignore[list-item]


def test_config_refuses_unknown_fields_and_entities() -> None:
    with pytest.raises(ValueError):
        PiiConfig(action="anonymise")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PiiConfig(mode="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown PII entity"):
        PiiConfig(entities=["SHOE_SIZE"])
    assert PiiConfig(entities=["TICKET"], custom=[{"name": "TICKET", "pattern": r"TCK-\d+"}])  # type: ignore[list-item]


@needs_presidio
def test_building_and_checking_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    g = PiiGuardrail(PiiConfig(action="redact"))
    assert g.engine == "presidio"
    g.warm()
    result = g.check("Write to jane@example.org or visit https://example.org/x from 10.0.0.1")
    assert result.text == "Write to [EMAIL_ADDRESS] or visit [URL] from [IP_ADDRESS]"


def test_regex_fallback_when_presidio_is_missing_gives_the_same_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    config = PiiConfig(action="pseudonymise", custom=[{"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}])  # type: ignore[list-item]
    g = PiiGuardrail(config)
    assert g.engine == "regex"
    text = "EMP-123456 (jane@example.com, 555-123-4567) paid with 4111 1111 1111 1111 from 10.1.2.3"
    result = g.check(text)
    assert isinstance(result, CheckResult)
    assert [f.kind for f in result.findings] == [
        "EMPLOYEE_ID",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IP_ADDRESS",
    ]
    assert result.text == (
        "<EMPLOYEE_ID_1> (<EMAIL_ADDRESS_1>, <PHONE_NUMBER_1>) paid with <CREDIT_CARD_1> from <IP_ADDRESS_1>"
    )
    assert restore(result.text, result.restore) == text
    assert set(result.to_dict()) == {"check", "verdict", "score", "findings", "elapsed_ms"}


def test_engine_is_built_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = pii_module._RegexDetector

    class Counting(real):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any) -> None:
            built.append(1)
            super().__init__(*args)

    monkeypatch.setattr(pii_module, "presidio_available", lambda: False)
    monkeypatch.setattr(pii_module, "_RegexDetector", Counting)
    g = PiiGuardrail()
    threads = [threading.Thread(target=g.check, args=("a@example.com",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == [1]


def test_a_10_kb_text_is_checked(guard: PiiGuardrail) -> None:
    line = "Ticket from jane{0}@example.com, phone (555) 123-{0:04d}, about invoice {0} of last week.\n"
    text = "".join(line.format(i) for i in range(200))[:10240]
    result = guard.check(text)
    assert result.verdict == "flag"
    assert sum(f.kind == "EMAIL_ADDRESS" for f in result.findings) >= 100
    assert result.elapsed_ms > 0
