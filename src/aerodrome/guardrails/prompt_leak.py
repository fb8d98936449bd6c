"""Prompt leaks: an answer that repeats a long verbatim stretch of the instructions the model was given.

The answer and the instructions (the rendered system message, optionally the user message's own
template text) are read as lower-case words, punctuation and spacing ignored. A run of the
answer's word 4-grams that all occur in the instructions and in nothing the caller may see anyway
(the caller's inputs, the retrieved passages) is a leaked stretch; one at least ``min_chars`` long
(in the answer) is a ``prompt_leak`` finding. Common words shared with the instructions make
short runs, never a finding; text quoted from a passage or an input is excluded, however long.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aerodrome.guardrails.base import Finding

NGRAM = 4
_WORD = re.compile(r"\w+")
Gram = tuple[str, ...]


class PromptLeakConfig(BaseModel):
    """``guardrails.output.prompt_leak`` of a use case."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="look for the instructions repeated in the answer")
    min_chars: int = Field(
        default=40, ge=16, le=10_000, description="shortest verbatim stretch (in the answer) that counts"
    )
    action: Literal["flag", "block"] = Field(
        default="flag",
        description="flag: a violation like the others (on_violation decides); block: the answer is replaced",
    )
    user_template: bool = Field(
        default=False,
        description="also the user message's own text (the prompt template without passages and inputs)",
    )


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def _grams(text: str) -> set[Gram]:
    words = [m.group().lower() for m in _words(text)]
    return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def leaked_stretches(
    answer: str, instructions: Iterable[str], given: Iterable[str], *, min_chars: int
) -> list[Finding]:
    """The stretches of ``answer`` (spans, in text order) repeated from ``instructions`` and not from ``given``."""
    matches = _words(answer)
    if len(matches) < NGRAM:
        return []
    secret: set[Gram] = set()
    for text in instructions:
        secret |= _grams(text)
    if not secret:
        return []
    allowed: set[Gram] = set()
    for text in given:
        allowed |= _grams(text)
    words = [m.group().lower() for m in matches]
    leaked = [
        i
        for i in range(len(words) - NGRAM + 1)
        if (gram := tuple(words[i : i + NGRAM])) in secret and gram not in allowed
    ]
    findings: list[Finding] = []
    run_start = prev = -2
    for i in [*leaked, -1]:  # -1 closes the last run
        if i == prev + 1:
            prev = i
            continue
        if run_start >= 0:
            start, end = matches[run_start].start(), matches[prev + NGRAM - 1].end()
            if end - start >= min_chars:
                findings.append(Finding("prompt_leak", start, end, 1.0))
        run_start = prev = i
    return findings
