"""The contract of an assertion (a *scorer*), and the registry built-ins and plug-ins share.

An assertion is built once per case from its parameters (``factory(params) -> Assertion``;
a bad parameter raises ``ValueError`` or a pydantic ``ValidationError`` and the suite loader
reports it as FILE:LINE) and scores an :class:`Observation` of the case's run. Scoring is
async because some assertions call models (:class:`Tools`: embeddings, an LLM judge).

Third parties add assertion types under the entry-point group ``aerodrome.scorers``::

    [project.entry-points."aerodrome.scorers"]
    polite = "mypackage.scorers:polite_factory"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from aerodrome.hookspecs import SCORERS_GROUP, Registry


@dataclass(slots=True)
class Observation:
    """What one case's run produced, as assertions see it."""

    case_id: str
    inputs: dict[str, Any]
    reference: Any
    status: str  # the use-case run's status (ok, fallback, output_invalid) or "error"
    output: Any  # text, or the parsed JSON of a json use case; None on an error
    citations: list[dict[str, Any]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)  # retrieved, with their text
    flags: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    review_reasons: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None

    @property
    def text(self) -> str:
        if self.output is None:
            return ""
        if isinstance(self.output, str):
            return self.output
        return orjson.dumps(self.output).decode()


@dataclass(frozen=True, slots=True)
class Score:
    passed: bool
    detail: str = ""
    score: float | None = None  # a graded value when there is one (similarity, judge score)


class Tools(Protocol):
    """Model calls assertions may make; each is recorded as an evaluation run."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def complete(self, alias: str | None, messages: list[dict[str, Any]]) -> str:
        """A chat answer of ``alias`` (None: the platform's evals.judge_model)."""
        ...


@runtime_checkable
class Assertion(Protocol):
    @property
    def kind(self) -> str: ...

    async def score(self, obs: Observation, tools: Tools) -> Score: ...


AssertionFactory = Callable[[Mapping[str, Any]], Assertion]


def _builtins() -> dict[str, AssertionFactory]:
    from aerodrome.evals import assertions, judge, semantic

    return {
        **assertions.FACTORIES,
        "similar": semantic.similar,
        "grounded": semantic.grounded,
        "judge": judge.factory,
    }


def assertion_registry() -> Registry[AssertionFactory]:
    """Assertion types by name: the built-ins plus every ``aerodrome.scorers`` entry point."""
    return Registry(SCORERS_GROUP, _builtins())


def value_at(output: Any, path: str | None) -> Any:
    """The value at a dotted path of a JSON output (``parties.0``); the whole output without a path."""
    if path is None:
        return output
    current = output
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(path)
    return current


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
