"""Checking a spec: its structure, its templates, and its references to the rest of the platform.

Every problem names the field, and (for a file) the file and the line, so that
``aerodrome usecases validate`` prints ``usecases/hr.yaml:12: inputs.question.max_length: ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aerodrome.config import YamlPath, block_start_line
from aerodrome.guardrails.registry import guardrail_registry
from aerodrome.usecases.spec import RESERVED_VARIABLES, UseCaseSpec
from aerodrome.usecases.template import PromptTemplate

_LEADING_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+) ")


@dataclass(frozen=True, slots=True)
class SpecProblem:
    field: str  # dotted path, "(file)" for the file as a whole
    message: str
    source: str = "<api>"
    line: int | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class PlatformRefs:
    """What a spec may refer to; ``None`` skips that check (e.g. validating without a config)."""

    departments: frozenset[str] | None = None
    chat_aliases: frozenset[str] | None = None
    collections: frozenset[str] | None = None
    webhooks: frozenset[str] | None = None  # alerts.webhooks names


@dataclass(slots=True)
class SpecCheck:
    spec: UseCaseSpec | None
    problems: list[SpecProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems


def _line(lines: dict[YamlPath, int], path: YamlPath) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def check_spec(
    data: Any,
    refs: PlatformRefs,
    *,
    source: str = "<api>",
    lines: dict[YamlPath, int] | None = None,
    text: str | None = None,
) -> SpecCheck:
    lines = lines or {}
    if not isinstance(data, dict):
        return SpecCheck(None, [SpecProblem("(file)", "a use case spec must be a mapping", source, 1)])
    try:
        spec = UseCaseSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc: YamlPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
            # pydantic puts a model validator's message at the model's own path; a cross-field rule
            # of the spec names its field first ("guardrails.output.prompt_leak reads ..."): use it
            message = err["msg"].removeprefix("Value error, ")
            named = _LEADING_FIELD.match(message)
            if not loc and named:
                loc = tuple(named.group(1).split("."))
            name = ".".join(str(p) for p in loc) or "(spec)"
            problems.append(SpecProblem(name, message, source, _line(lines, loc)))
        known = {p.field for p in problems}
        extra = _raw_problems(data, refs, source, lines, text)
        return SpecCheck(None, problems + [p for p in extra if p.field not in known])
    problems = _template_problems(spec, source, lines, text) + _reference_problems(spec, refs, source, lines)
    return SpecCheck(spec, problems)


def _raw_problems(
    data: dict[str, Any], refs: PlatformRefs, source: str, lines: dict[YamlPath, int], text: str | None
) -> list[SpecProblem]:
    """Template and reference checks on a spec that failed its structure, so one pass reports everything."""
    raw_inputs = data.get("inputs")
    inputs: dict[Any, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    stand_in: dict[str, Any] = {
        "id": "x",
        "title": "x",
        "departments": [d for d in data.get("departments") or [] if isinstance(d, str)] or ["x"],
        "inputs": {k: {} for k in inputs if isinstance(k, str) and k.isidentifier()} or {"x": {}},
        "prompt": data["prompt"] if isinstance(data.get("prompt"), str) and data["prompt"] else "x",
        "model": data["model"] if isinstance(data.get("model"), str) and data["model"] else "x",
    }
    if isinstance(data.get("system"), str):
        stand_in["system"] = data["system"]
    try:
        spec = UseCaseSpec.model_validate(stand_in)
    except ValidationError:
        return []
    given = PlatformRefs(
        departments=refs.departments if isinstance(data.get("departments"), list) else None,
        chat_aliases=refs.chat_aliases if isinstance(data.get("model"), str) else None,
    )
    found = _template_problems(spec, source, lines, text) if isinstance(data.get("prompt"), str) else []
    return found + _reference_problems(spec, given, source, lines)


def _template_problems(
    spec: UseCaseSpec, source: str, lines: dict[YamlPath, int], text: str | None
) -> list[SpecProblem]:
    allowed = set(spec.inputs) | set(RESERVED_VARIABLES)
    found = []
    templates: list[tuple[YamlPath, str]] = [(("prompt",), spec.prompt)]
    if spec.system is not None:
        templates.append((("system",), spec.system))
    if spec.retrieval is not None and spec.retrieval.query is not None:
        templates.append((("retrieval", "query"), spec.retrieval.query))
    for path, template in templates:
        start = block_start_line(text, path) if text is not None else None
        for problem in PromptTemplate.problems(template, allowed):
            line = _line(lines, path)
            if start is not None and problem.line is not None:
                line = start + problem.line - 1
            found.append(SpecProblem(".".join(map(str, path)), problem.message, source, line))
    if spec.retrieval is None:
        for path, template in templates:
            if "context" in template or "passages" in template:
                names = PromptTemplate.problems(template, set(spec.inputs))
                if any("'context'" in p.message or "'passages'" in p.message for p in names):
                    found.append(
                        SpecProblem(
                            ".".join(map(str, path)),
                            "uses context/passages but the use case has no retrieval",
                            source,
                            _line(lines, path),
                        )
                    )
    return found


def _reference_problems(
    spec: UseCaseSpec, refs: PlatformRefs, source: str, lines: dict[YamlPath, int]
) -> list[SpecProblem]:
    found = []
    if refs.departments is not None:
        for i, dept in enumerate(spec.departments):
            if dept not in refs.departments:
                found.append(
                    SpecProblem(
                        f"departments.{i}",
                        f"unknown department {dept!r}; known: {sorted(refs.departments)}",
                        source,
                        _line(lines, ("departments", i)),
                    )
                )
    if refs.chat_aliases is not None and spec.model not in refs.chat_aliases:
        found.append(
            SpecProblem(
                "model",
                f"unknown chat model alias {spec.model!r}; known: {sorted(refs.chat_aliases)}",
                source,
                _line(lines, ("model",)),
            )
        )
    if refs.webhooks is not None:
        for i, rule in enumerate(spec.alerts):
            for name in rule.webhooks or []:
                if name not in refs.webhooks:
                    found.append(
                        SpecProblem(
                            f"alerts.{i}.webhooks",
                            f"unknown webhook {name!r}; configured (alerts.webhooks): {sorted(refs.webhooks)}",
                            source,
                            _line(lines, ("alerts", i, "webhooks")),
                        )
                    )
    known_checks = set(guardrail_registry().names())
    for name in spec.guardrails.custom:
        if name not in known_checks or name in ("pii", "prompt_injection", "output"):
            found.append(
                SpecProblem(
                    f"guardrails.custom.{name}",
                    f"unknown guardrail {name!r}; registered: {sorted(known_checks - {'pii', 'prompt_injection', 'output'})}",
                    source,
                    _line(lines, ("guardrails", "custom", name)),
                )
            )
    if refs.collections is not None and spec.retrieval is not None:
        for i, name in enumerate(spec.retrieval.collections):
            if name not in refs.collections:
                found.append(
                    SpecProblem(
                        f"retrieval.collections.{i}",
                        f"unknown collection {name!r}; known: {sorted(refs.collections)}",
                        source,
                        _line(lines, ("retrieval", "collections", i)),
                    )
                )
    return found
