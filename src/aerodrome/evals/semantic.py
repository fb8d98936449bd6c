"""Assertions on meaning: semantic similarity to a reference, and groundedness in the retrieved context.

``similar`` embeds the answer and the reference (``evals.embedding``: the local all-MiniLM-L6-v2
by default, or an embeddings alias) and compares their cosine similarity with ``min``.

``grounded`` checks that every sentence of the answer is supported by one retrieved passage:
a sentence is supported when at least ``min_support`` of its content terms (lower-cased,
stemmed, stop words left out: the local engine's own term analysis) occur in that passage.
Citation markers and sentences with fewer than ``min_terms`` content terms ("Thanks!") are
not judged. A run that retrieved nothing is not grounded unless it answered with a fallback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aerodrome.evals.scoring import Assertion, Observation, Score, Tools, as_text, value_at
from aerodrome.providers.local_extractive import split_sentences, terms

_MARKERS = re.compile(r"\[\d{1,3}\]")


class Similar(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["similar"] = "similar"
    value: str | None = Field(
        default=None, description="the text to compare with; default: the case reference"
    )
    min: float = Field(default=0.75, ge=-1, le=1, description="least cosine similarity accepted")
    path: str | None = None

    async def score(self, obs: Observation, tools: Tools) -> Score:
        reference = self.value if self.value is not None else obs.reference
        if reference is None:
            return Score(False, "no reference to compare with (set value or the case's reference)")
        if obs.output is None:
            return Score(False, f"no output ({obs.error_code or obs.status})")
        try:
            got = value_at(obs.output, self.path)
        except KeyError:
            return Score(False, f"the output has no {self.path!r}")
        a, b = await tools.embed([_MARKERS.sub("", as_text(got)), as_text(reference)])
        sim = cosine(a, b)
        ok = sim >= self.min
        return Score(ok, f"similarity {sim:.3f} {'≥' if ok else '<'} {self.min:g}", round(sim, 4))


class Grounded(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["grounded"] = "grounded"
    min_support: float = Field(
        default=0.6, gt=0, le=1, description="share of a sentence's terms one passage must contain"
    )
    min_terms: int = Field(default=3, ge=1, description="sentences with fewer content terms are not judged")

    async def score(self, obs: Observation, tools: Tools) -> Score:
        if obs.output is None:
            return Score(False, f"no output ({obs.error_code or obs.status})")
        if obs.status == "fallback":
            return Score(True, "a fallback answer (nothing to ground)")
        if not obs.passages:
            return Score(False, "nothing was retrieved to ground the answer in")
        supported, judged, weakest = support(obs.text, obs.passages, self.min_support, self.min_terms)
        if judged == 0:
            return Score(True, "no sentence long enough to judge")
        ok = supported == judged
        detail = f"{supported} of {judged} sentences supported"
        if weakest is not None and not ok:
            detail += f"; unsupported: {weakest[:160]!r}"
        return Score(ok, detail, round(supported / judged, 4))


def support(
    answer: str, passages: list[dict[str, Any]], min_support: float, min_terms: int
) -> tuple[int, int, str | None]:
    """(sentences supported, sentences judged, the first unsupported sentence)."""
    passage_terms = [set(terms(str(p.get("text") or ""))) for p in passages]
    supported = judged = 0
    first_bad: str | None = None
    for sentence in split_sentences(_MARKERS.sub("", answer)):
        words = set(terms(sentence))
        if len(words) < min_terms:
            continue
        judged += 1
        best = max((len(words & pt) / len(words) for pt in passage_terms), default=0.0)
        if best >= min_support:
            supported += 1
        elif first_bad is None:
            first_bad = sentence.strip()
    return supported, judged, first_bad


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def similar(params: Mapping[str, Any]) -> Assertion:
    return Similar.model_validate(dict(params))


def grounded(params: Mapping[str, Any]) -> Assertion:
    return Grounded.model_validate(dict(params))
