"""Pseudonyms restored in a streamed answer: a placeholder split over chunks comes back whole."""

from __future__ import annotations

import pytest

from aerodrome.guardrails.pii import restore
from aerodrome.guardrails.pseudonym_stream import StreamRestorer

MAPPING = {
    "<EMAIL_ADDRESS_1>": "jane.doe@example.com",
    "<PHONE_NUMBER_1>": "+1 415 555 0100",
    "<PHONE_NUMBER_12>": "+1 415 555 0112",
}
ANSWERS = [
    "Write to <EMAIL_ADDRESS_1> today [1], or call <PHONE_NUMBER_12>.",
    "As the model spells them: <email address 1>, [EMAIL-ADDRESS-1], {phone_number_1} and PHONE_NUMBER_12.",
    "Glued: x<EMAIL_ADDRESS_1>y, EMAIL_ADDRESS_12 is no placeholder, <EMAIL_ADDRESS_1 > is one.",
    "<PHONE_NUMBER_1>",
    "ends on a placeholder <EMAIL_ADDRESS_1>",
]


def _streamed(mapping: dict[str, str], pieces: list[str]) -> tuple[str, list[str]]:
    restorer = StreamRestorer(mapping)
    released = [restorer.feed(p) for p in pieces] + [restorer.finish()]
    return "".join(released), released


@pytest.mark.parametrize("answer", ANSWERS)
def test_every_split_into_three_chunks_restores_as_the_whole_answer_does(answer: str) -> None:
    want = restore(answer, MAPPING)
    assert "jane.doe@example.com" in want or "+1 415" in want
    for i in range(len(answer) + 1):
        for j in range(i, len(answer) + 1):
            got, released = _streamed(MAPPING, [answer[:i], answer[i:j], answer[j:]])
            assert got == want, (answer[:i], answer[i:j], answer[j:])
            assert not any("<EMAIL_ADDRESS_1>" in r for r in released)


def test_a_placeholder_one_character_a_chunk_is_never_shown_in_part() -> None:
    answer = "Mail <EMAIL_ADDRESS_1> now."
    got, released = _streamed(MAPPING, list(answer))
    assert got == "Mail jane.doe@example.com now."
    assert not any("<" in r or "EMAIL" in r for r in released)
    # released once the placeholder is complete and the next character says it is not <..._12>
    assert any(r.startswith("jane.doe@example.com") for r in released[:-1])


def test_text_that_cannot_start_a_placeholder_is_released_at_once() -> None:
    restorer = StreamRestorer(MAPPING)
    assert restorer.feed("Hello world [1], ") == "Hello world [1], "
    assert restorer.feed("see <EMA") == "see "  # the tail could still be <EMAIL_ADDRESS_1>
    assert restorer.held == "<EMA"
    assert restorer.feed("IL_ADDRESS_1> x") == "jane.doe@example.com x"
    assert restorer.feed(" <b>") == " <b>"  # not the start of any placeholder
    assert restorer.feed(" and e") == " and "
    assert restorer.finish() == "e"


def test_without_placeholders_nothing_is_held() -> None:
    restorer = StreamRestorer({})
    assert restorer.feed("<EMAIL_ADDRESS_1") == "<EMAIL_ADDRESS_1"
    assert restorer.finish() == ""
