"""LLM-as-judge: a chat alias of the catalog scores the answer against a rubric.

The judge gets the rubric, the case's inputs, its reference (when there is one) and the
answer, and must reply with JSON ``{"score": 0..1, "reason": "..."}``. The call goes through
the gateway like any other (limits, budgets, data-class ceilings, a run record marked as an
evaluation run), on ``model`` or else the platform's ``evals.judge_model``. An answer that is
not such JSON fails the assertion with the judge's words in the detail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from aerodrome.evals.scoring import Assertion, Observation, Score, Tools, as_text

SYSTEM = (
    "You are a strict evaluator of an AI assistant's answers. Judge the ANSWER against the RUBRIC only. "
    'Reply with JSON only: {"score": <a number from 0 to 1>, "reason": "<one sentence>"}.'
)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class Judge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["judge"] = "judge"
    rubric: str = Field(min_length=1, max_length=8000, description="what a good answer does")
    model: str | None = Field(default=None, description="chat alias of the judge; default: evals.judge_model")
    min: float = Field(default=0.7, ge=0, le=1, description="least score accepted")

    def messages(self, obs: Observation) -> list[dict[str, Any]]:
        parts = [f"RUBRIC:\n{self.rubric}", f"INPUTS:\n{as_text(obs.inputs)}"]
        if obs.reference is not None:
            parts.append(f"REFERENCE ANSWER:\n{as_text(obs.reference)}")
        parts.append(f"ANSWER:\n{obs.text}")
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]

    async def score(self, obs: Observation, tools: Tools) -> Score:
        if obs.output is None:
            return Score(False, f"no output ({obs.error_code or obs.status})")
        reply = await tools.complete(self.model, self.messages(obs))
        verdict = parse_verdict(reply)
        if verdict is None:
            return Score(False, f"the judge did not answer with a score: {reply[:200]!r}")
        value, reason = verdict
        ok = value >= self.min
        return Score(ok, f"judge {value:.2f} {'≥' if ok else '<'} {self.min:g}: {reason}"[:400], value)


def parse_verdict(reply: str) -> tuple[float, str] | None:
    """(score in 0..1, reason) from the judge's reply, None when it gave none."""
    found = _OBJECT.search(reply)
    if found is None:
        return None
    try:
        data = orjson.loads(found.group(0))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        return None
    value = float(score)
    if not 0.0 <= value <= 1.0:
        return None
    return value, str(data.get("reason") or "")


def factory(params: Mapping[str, Any]) -> Assertion:
    return Judge.model_validate(dict(params))
