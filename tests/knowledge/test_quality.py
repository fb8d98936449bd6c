"""The data-quality report: each problem kind counted with examples, quarantine by rules, PII by class."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from aerodrome.knowledge import pii_scan
from aerodrome.knowledge.documents import ParsedDocument, Section, SourceDocument
from aerodrome.knowledge.quality import DocumentFacts, QualityRules, assess, render_markdown

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BODY = (
    "Employees accrue twenty days of paid leave per calendar year, and unused days carry over until the "
    "end of March. Requests go through the HR portal at least two weeks in advance, and managers answer "
    "within five working days. Parental leave is sixteen weeks at full pay for every parent. Sick leave "
    "needs a doctor's note after three days; it does not reduce paid leave. Unpaid leave of up to three "
    "months can be agreed with the manager and HR once a year, and the position is kept open. Public "
    "holidays follow the calendar of the office a person works from, not the calendar of their home."
)


def facts(doc_id: str, text: str | None = BODY, **kw: object) -> DocumentFacts:
    return DocumentFacts(document_id=doc_id, title=doc_id.title(), uri=f"file:///{doc_id}", text=text, **kw)  # type: ignore[arg-type]


def corpus() -> list[DocumentFacts]:
    return [
        facts("leave.md"),
        facts("leave_copy.md", text=BODY.replace(" ", "  ")),  # same text once whitespace is normalised
        facts("leave_2024.md", text=BODY + " Ask HR."),  # a near duplicate
        facts("broken.pdf", text=None, error="corrupt PDF (truncated)"),
        facts("draft.txt", text="   "),
        facts("stub.txt", text="TODO: write this."),
        facts(
            "old.md",
            text=BODY.replace("leave", "holiday") + " Archived.",
            modified_at=NOW - timedelta(days=900),
        ),
        facts(
            "latin1.txt",
            text="The caf\ufffd opens at eight and closes at five on weekdays, and at noon on Fridays.",
            warnings=["invalid UTF-8 (3 bytes replaced)", "page 2 has no text"],
        ),
        facts(
            "contacts.md", text="Write to jane.doe@example.com or call (555) 123-4567 for payroll questions."
        ),
    ]


def test_every_problem_kind_is_found() -> None:
    report = assess("internal", corpus(), QualityRules(freshness_days=365), now=NOW)
    summary = report.to_dict()["summary"]
    assert summary == {
        "unparseable": 1, "empty": 1, "near_empty": 1, "exact_duplicate": 1, "near_duplicate": 1,
        "stale": 1, "encoding": 1, "pii_in_public": 1,
    }  # fmt: skip
    flags = report.problems_by_document()
    assert flags["leave_copy.md"] == ["exact_duplicate"]
    assert flags["leave_2024.md"] == ["near_duplicate"]
    assert "leave.md" not in flags  # the original (smallest id) is not flagged
    assert flags["broken.pdf"] == ["unparseable"]
    examples = report.problems
    assert examples["exact_duplicate"].examples[0].detail == "same text as leave.md"
    assert (
        examples["near_duplicate"]
        .examples[0]
        .detail.startswith("nearly the same text as leave.md (Jaccard ~0.")
    )
    assert examples["encoding"].examples[0].detail == "invalid UTF-8 (3 bytes replaced)"
    assert examples["stale"].examples[0].document_id == "old.md"
    assert examples["pii_in_public"].examples[0].detail == "1 email, 1 phone in a internal collection"


def test_duplicates_keep_the_smallest_id_as_original() -> None:
    report = assess("restricted", [facts("b.md"), facts("a.md"), facts("c.md")], QualityRules(), now=NOW)
    assert report.problems["exact_duplicate"].count == 2
    assert [e.detail for e in report.problems["exact_duplicate"].examples] == ["same text as a.md"] * 2
    assert "a.md" not in report.flags


def test_quarantine_follows_the_rules() -> None:
    rules = QualityRules(quarantine=["unparseable", "exact_duplicate"], freshness_days=365)
    report = assess("internal", corpus(), rules, now=NOW)
    assert report.quarantined == ["broken.pdf", "leave_copy.md"]
    report = assess("internal", corpus(), QualityRules(), now=NOW)  # default rules
    assert report.quarantined == ["broken.pdf", "contacts.md", "draft.txt", "leave_copy.md"]


def test_pii_is_only_a_problem_in_public_and_internal_collections() -> None:
    docs = [facts("contacts.md", text="Card 4111 1111 1111 1111 and SSN 123-45-6789 on file here.")]
    for data_class, expected in (("public", 1), ("internal", 1), ("confidential", 0), ("restricted", 0)):
        assert assess(data_class, docs, QualityRules(), now=NOW).problems["pii_in_public"].count == expected
    report = assess("public", docs, QualityRules(), now=NOW).to_dict()
    detail = report["problems"]["pii_in_public"]["examples"][0]["detail"]
    assert detail == "1 credit_card, 1 us_ssn in a public collection"
    assert "4111" not in json.dumps(report)  # the report never repeats the values


def test_examples_are_capped_at_five_but_counts_are_not() -> None:
    docs = [facts(f"err-{i}", text=None, error=f"bad {i}") for i in range(8)]
    summary = assess("internal", docs, QualityRules(), now=NOW).problems["unparseable"]
    assert summary.count == 8 and len(summary.examples) == 5


def test_freshness_off_by_default_and_naive_times_are_utc() -> None:
    old = [facts("old.md", modified_at=datetime(2020, 1, 1))]
    assert assess("internal", old, QualityRules(), now=NOW).problems["stale"].count == 0
    assert assess("internal", old, QualityRules(freshness_days=30), now=NOW).problems["stale"].count == 1


def test_report_is_json_and_markdown() -> None:
    report = assess("internal", corpus(), QualityRules(freshness_days=365), now=NOW)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["total_documents"] == 9 and data["documents_with_problems"] == 8
    assert data["problems"]["unparseable"]["quarantines"] is True
    text = render_markdown("hr-policies", data)
    assert text.startswith("# Data quality of hr-policies (internal collection)")
    assert (
        "| unparseable | 1 | yes |" in text and "`broken.pdf (Broken.Pdf)`: corrupt PDF (truncated)" in text
    )
    assert report.to_markdown("hr-policies") == text


def test_facts_from_documents() -> None:
    source = SourceDocument("a.md", "file:///a.md", "text/markdown", content=b"# A\nbody", modified_at=NOW)
    parsed = ParsedDocument(
        title="A", sections=[Section("body", heading="A")], warnings=["1 NUL byte removed"]
    )
    f = DocumentFacts.of(source, parsed)
    assert (f.document_id, f.title, f.text, f.warnings, f.modified_at) == (
        "a.md",
        "A",
        "body",
        parsed.warnings,
        NOW,
    )
    failed = DocumentFacts.of(source, None, "corrupt")
    assert failed.text is None and failed.error == "corrupt"


def test_rules_validate() -> None:
    with pytest.raises(ValidationError):
        QualityRules(quarantine=["spelling"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        QualityRules(near_duplicate_threshold=1.5)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("mail ops@example.org today", ["email"]),
        ("call +44 20 7946 0958 now", ["phone"]),
        ("card 4111-1111-1111-1111.", ["credit_card"]),
        ("card 4111 1111 1111 1112 fails Luhn", []),
        ("IBAN DE89 3704 0044 0532 0130 00 ok", ["iban"]),
        ("IBAN DE89 3704 0044 0532 0130 01 bad", []),
        ("SSN 078-05-1120", ["us_ssn"]),
        ("SSN 666-05-1120 is never issued", []),
        ("host 192.168.10.4, version 1.2.3.4.5, 300.1.1.1", ["ipv4"]),
        ("p < 0.001, 95% CI 1.2-3.4, 2019-10-12, n = 1234567", []),
    ],
)
def test_pii_scanner(text: str, kinds: list[str]) -> None:
    assert [m.kind for m in pii_scan.scan(text)] == kinds


def test_the_newest_version_is_the_original_of_duplicates() -> None:
    old = datetime(2024, 3, 1, tzinfo=UTC)
    new = datetime(2026, 9, 1, tzinfo=UTC)
    text = BODY + " Parental leave is sixteen weeks at full pay for birth parents."
    changed = text.replace("sixteen", "fourteen")
    report = assess(
        "internal",
        [
            facts("a-old-copy.md", changed, modified_at=old),
            facts("b-current.md", text, modified_at=new),
            facts("c-exact.md", text, modified_at=old),
        ],
        QualityRules(near_duplicate_threshold=0.5, quarantine=["exact_duplicate", "near_duplicate"]),
    )
    # the older documents are the copies, whatever their ids say
    assert report.quarantined == ["a-old-copy.md", "c-exact.md"]
