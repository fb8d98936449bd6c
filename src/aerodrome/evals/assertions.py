"""The built-in assertions that need no model: text, JSON, numbers, status, citations, refusals.

Each has a pydantic model of its parameters (unknown ones are refused) and scores an
:class:`~aerodrome.evals.scoring.Observation`. ``path`` (where accepted) picks a value of a
JSON output by a dotted path (``parties.0``); without it the whole output counts, as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aerodrome.evals.scoring import AssertionFactory, Observation, Score, Tools, as_text, value_at
from aerodrome.guardrails.output import valid_json_schema

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
REFUSAL = re.compile(
    r"\b(I can(?:no|')t|I am unable|I'm unable|I could not find|I can't find|cannot help|not able to)\b",
    re.IGNORECASE,
)
REFUSAL_STATUSES = ("fallback", "output_invalid")
REFUSAL_ERRORS = ("guardrail_blocked", "data_class_exceeds_model")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _picked(obs: Observation, path: str | None) -> tuple[Any, str | None]:
    """The value the assertion looks at, or a reason it is not there."""
    if obs.output is None:
        return None, f"no output ({obs.error_code or obs.status})"
    try:
        return value_at(obs.output, path), None
    except KeyError:
        return None, f"the output has no {path!r}"


class Exact(_Params):
    kind: Literal["exact"] = "exact"
    value: Any = Field(description="the expected output (text, or a JSON value)")
    path: str | None = None
    case_sensitive: bool = True

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(False, missing)
        if isinstance(got, str) and isinstance(self.value, str):
            a, b = got.strip(), self.value.strip()
            same = a == b if self.case_sensitive else a.casefold() == b.casefold()
        else:
            same = got == self.value
        return Score(same, "" if same else f"expected {as_text(self.value)[:200]}, got {as_text(got)[:200]}")


class Contains(_Params):
    kind: Literal["contains"] = "contains"
    value: str | list[str] = Field(description="a text, or texts that must all appear")
    path: str | None = None
    case_sensitive: bool = False

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(False, missing)
        text = as_text(got)
        wanted = [self.value] if isinstance(self.value, str) else self.value
        if not self.case_sensitive:
            text = text.casefold()
        absent = [w for w in wanted if (w if self.case_sensitive else w.casefold()) not in text]
        return Score(not absent, f"missing {absent}" if absent else "")


class NotContains(_Params):
    kind: Literal["not_contains"] = "not_contains"
    value: str | list[str] = Field(description="a text, or texts none of which may appear")
    path: str | None = None
    case_sensitive: bool = False

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(True, missing)
        text = as_text(got)
        banned = [self.value] if isinstance(self.value, str) else self.value
        if not self.case_sensitive:
            text = text.casefold()
        found = [w for w in banned if (w if self.case_sensitive else w.casefold()) in text]
        return Score(not found, f"found {found}" if found else "")


class Regex(_Params):
    kind: Literal["regex"] = "regex"
    pattern: str
    path: str | None = None
    ignore_case: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(False, missing)
        found = re.search(self.pattern, as_text(got), re.IGNORECASE if self.ignore_case else 0)
        return Score(found is not None, "" if found else f"no match for /{self.pattern}/")


class JsonSchema(_Params):
    kind: Literal["json_schema"] = "json_schema"
    schema_: dict[str, Any] = Field(alias="schema")
    path: str | None = None
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        checked = valid_json_schema(value)
        assert checked is not None
        return checked

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(False, missing)
        validator = jsonschema.Draft202012Validator(self.schema_)
        errors = sorted(validator.iter_errors(got), key=lambda e: list(e.path))
        if not errors:
            return Score(True)
        first = errors[0]
        where = ".".join(str(p) for p in first.path) or "(root)"
        return Score(False, f"{where}: {first.message}"[:300])


class Numeric(_Params):
    kind: Literal["numeric"] = "numeric"
    value: float
    tolerance: float = Field(default=0.0, ge=0, description="largest absolute difference accepted")
    relative: float | None = Field(default=None, ge=0, description="largest relative difference accepted")
    path: str | None = None

    async def score(self, obs: Observation, tools: Tools) -> Score:
        got, missing = _picked(obs, self.path)
        if missing:
            return Score(False, missing)
        number: float | None = None
        if isinstance(got, int | float) and not isinstance(got, bool):
            number = float(got)
        else:
            found = _NUMBER.search(as_text(got))
            number = float(found.group(0).replace(",", "")) if found else None
        if number is None or math.isnan(number):
            return Score(False, "no number in the output")
        allowed = max(self.tolerance, abs(self.value) * self.relative if self.relative is not None else 0.0)
        ok = abs(number - self.value) <= allowed
        return Score(ok, "" if ok else f"{number:g} is not within {allowed:g} of {self.value:g}", number)


class Status(_Params):
    kind: Literal["status"] = "status"
    value: str | list[str] = Field(description="ok, fallback, output_invalid or error (or several)")

    async def score(self, obs: Observation, tools: Tools) -> Score:
        wanted = [self.value] if isinstance(self.value, str) else self.value
        ok = obs.status in wanted
        return Score(ok, "" if ok else f"status {obs.status}, expected {' or '.join(wanted)}")


class Cites(_Params):
    kind: Literal["cites"] = "cites"
    min: int = Field(default=1, ge=1, description="at least this many citations")
    document: str | None = Field(default=None, description="one citation must be of this document id")

    async def score(self, obs: Observation, tools: Tools) -> Score:
        cited = [c for c in obs.citations if c.get("document_id")]
        if len(cited) < self.min:
            return Score(False, f"{len(cited)} citation(s), need {self.min}")
        if self.document is not None and not any(c.get("document_id") == self.document for c in cited):
            docs = sorted({str(c.get("document_id")) for c in cited})
            return Score(False, f"does not cite {self.document!r} (cites {docs})")
        return Score(True)


class Refuses(_Params):
    kind: Literal["refuses"] = "refuses"
    reason: str | None = Field(
        default=None, description="the fallback reason required (low_retrieval, schema, ...)"
    )

    async def score(self, obs: Observation, tools: Tools) -> Score:
        if self.reason is not None:
            ok = obs.fallback_reason == self.reason or obs.error_code == self.reason
            return Score(ok, "" if ok else f"no {self.reason} refusal (status {obs.status})")
        if obs.status in REFUSAL_STATUSES or obs.error_code in REFUSAL_ERRORS:
            return Score(True)
        if REFUSAL.search(obs.text):
            return Score(True)
        return Score(False, f"answered instead of refusing (status {obs.status})")


def _factory(model: type[_Params]) -> AssertionFactory:
    def build(params: Mapping[str, Any]) -> Any:
        return model.model_validate(dict(params))

    return build


FACTORIES: dict[str, AssertionFactory] = {
    "exact": _factory(Exact),
    "contains": _factory(Contains),
    "not_contains": _factory(NotContains),
    "regex": _factory(Regex),
    "json_schema": _factory(JsonSchema),
    "numeric": _factory(Numeric),
    "status": _factory(Status),
    "cites": _factory(Cites),
    "refuses": _factory(Refuses),
}
