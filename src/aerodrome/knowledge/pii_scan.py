"""A small regex scanner for structured PII, used by the data-quality report.

Kinds: ``email``, ``phone``, ``credit_card`` (Luhn-checked), ``iban`` (mod-97-checked),
``us_ssn`` and ``ipv4``. Overlapping matches keep the most specific kind. This is a
stop-gap: the guardrails work replaces it with Presidio; the report only needs counts
(never the values themselves).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("email", "iban", "credit_card", "us_ssn", "ipv4", "phone")  # most specific first

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_SSN_INVALID = re.compile(r"^(?:000|666|9\d\d)|-00-|-0000$")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r")(?![\w])"
)


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    iban = candidate.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _isolated(text: str, m: re.Match[str], joiners: str) -> bool:
    """No digit (or joiner followed by a digit) right before or after the match."""
    before = text[m.start() - 1] if m.start() else " "
    after = text[m.end() : m.end() + 2]
    if before.isdigit() or before in joiners:
        return False
    return not (after[:1].isdigit() or (after[:1] in joiners and after[1:2].isdigit()))


def _card(text: str, m: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", m.group(0))
    return _isolated(text, m, "-") and digits[0] in "23456" and luhn_valid(digits)


def _ssn(text: str, m: re.Match[str]) -> bool:
    return _isolated(text, m, "-") and not _SSN_INVALID.search(m.group(0))


def _ipv4(text: str, m: re.Match[str]) -> bool:
    octets = m.group(0).split(".")
    return _isolated(text, m, ".") and all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets)


def _phone(text: str, m: re.Match[str]) -> bool:
    return 7 <= sum(ch.isdigit() for ch in m.group(0)) <= 15


def _iban(text: str, m: re.Match[str]) -> bool:
    return iban_valid(m.group(0))


Check = Callable[[str, "re.Match[str]"], bool]


def scan(text: str) -> list[PiiMatch]:
    """Non-overlapping PII matches in text order."""
    checks: tuple[tuple[str, re.Pattern[str], Check | None, str], ...] = (
        ("email", _EMAIL, None, "@"),
        ("iban", _IBAN, _iban, ""),
        ("credit_card", _CARD, _card, ""),
        ("us_ssn", _SSN, _ssn, "-"),
        ("ipv4", _IPV4, _ipv4, "."),
        ("phone", _PHONE, _phone, ""),
    )
    candidates: list[PiiMatch] = []
    for kind, pattern, valid, needed in checks:
        if needed and needed not in text:
            continue
        for m in pattern.finditer(text):
            if valid is None or valid(text, m):
                candidates.append(PiiMatch(kind, m.start(), m.end()))
    taken: list[PiiMatch] = []
    for match in sorted(candidates, key=lambda c: KINDS.index(c.kind)):
        if all(match.end <= t.start or match.start >= t.end for t in taken):
            taken.append(match)
    return sorted(taken, key=lambda c: c.start)


def counts(text: str) -> dict[str, int]:
    """How many of each PII kind the text holds (kinds with none are left out)."""
    return dict(Counter(m.kind for m in scan(text)))
