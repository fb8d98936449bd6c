"""The local engine's structured extraction (response_format json_schema)."""

from __future__ import annotations

import json

from aerodrome.providers.local_extractive import answer
from aerodrome.providers.local_structured import extract, requested_schema

CONTRACT = (
    "MASTER SERVICES AGREEMENT. This Master Services Agreement is entered into on 1 March 2026 between "
    "Northwind Traders Ltd and Contoso Analytics Inc. The initial term of this Agreement is 24 months from the "
    "effective date. Either party may terminate this Agreement by giving 90 days written notice to the other "
    "party. The Agreement does not renew automatically. This Agreement is governed by the laws of the State "
    "of New York. Disputes go to arbitration in London."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "parties": {
            "type": "array",
            "items": {"type": "string"},
            "description": "parties entering the agreement",
        },
        "effective_date": {"type": "string", "format": "date", "description": "date it is entered into"},
        "term_months": {"type": "integer", "description": "initial term in months"},
        "notice_days": {"type": "integer", "description": "days of written notice to terminate"},
        "auto_renewal": {"type": "boolean", "description": "renews automatically"},
        "governing_law": {"type": "string", "description": "laws governing the agreement"},
        "venue": {"type": "string", "enum": ["London", "Paris"], "description": "arbitration disputes"},
        "penalty_rate": {"type": "number", "description": "late payment penalty interest"},
    },
}


def test_each_property_is_taken_from_its_best_supported_sentence() -> None:
    messages = [
        {"role": "system", "content": "Extract the clauses as JSON."},
        {"role": "user", "content": CONTRACT},
    ]
    got = json.loads(extract(messages, SCHEMA))
    assert got == {
        "parties": ["Northwind Traders Ltd", "Contoso Analytics Inc"],
        "effective_date": "2026-03-01",
        "term_months": 24,
        "notice_days": 90,
        "auto_renewal": False,
        "governing_law": "State of New York",
        "venue": "London",
    }  # no penalty in the text: left out, never invented


def test_nothing_supported_gives_an_empty_object_and_instructions_are_not_searched() -> None:
    messages = [
        {"role": "system", "content": "The notice period is 30 days and the term is 12 months."},
        {"role": "user", "content": "Thanks for lunch yesterday, see you soon."},
    ]
    assert extract(messages, SCHEMA) == "{}"


def test_requested_schema() -> None:
    assert requested_schema({}) is None
    assert requested_schema({"response_format": {"type": "text"}}) is None
    assert requested_schema({"response_format": {"type": "json_object"}}) == {}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    assert requested_schema({"response_format": fmt}) == SCHEMA


def test_a_message_with_several_questions_gets_each_answered() -> None:
    context = [
        (
            "[1] Aerolite costs 8 euros per user per month on the Team plan.\n"
            "[2] Every plan starts with a 30-day free trial. No credit card is needed.\n"
            "[3] Administrators can export all projects as CSV.",
            False,
        )
    ]
    text = answer(context, "Hi! How much does Aerolite cost per user? Is there a free trial? Thanks")
    assert "8 euros" in text and "30-day free trial" in text and "[1]" in text and "[2]" in text
    assert "export" not in text
