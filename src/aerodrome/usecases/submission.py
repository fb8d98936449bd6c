"""A spec submitted through the API: ``{"spec": {...}}`` or ``{"yaml": "..."}`` (lines then count)."""

from __future__ import annotations

from typing import Any

import yaml

from aerodrome.config import read_yaml
from aerodrome.errors import BadRequest, UnprocessableInput
from aerodrome.usecases.validation import PlatformRefs, SpecCheck, SpecProblem, check_spec


class InvalidSpec(UnprocessableInput):
    """422 with every problem (field, line, message) in ``error.problems``."""

    code = "invalid_spec"

    def __init__(self, problems: list[SpecProblem]) -> None:
        first = problems[0] if problems else None
        summary = str(first) if first is not None else "the spec is invalid"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"invalid use case spec: {summary}{more}", param=first.field if first else None)
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["error"]["problems"] = [p.to_dict() for p in self.problems]
        return data


def check_submission(body: dict[str, Any], refs: PlatformRefs) -> SpecCheck:
    unknown = sorted(set(body) - {"spec", "yaml"})
    if unknown or len(body) != 1:
        raise BadRequest('send {"spec": {...}} or {"yaml": "..."}', param=unknown[0] if unknown else None)
    if "spec" in body:
        return check_spec(body["spec"], refs)
    text = body["yaml"]
    if not isinstance(text, str):
        raise BadRequest("yaml must be a string holding the spec file's text", param="yaml")
    try:
        data, lines = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = SpecProblem(
            "(file)",
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            "<yaml>",
            mark.line + 1 if mark is not None else None,
        )
        return SpecCheck(None, [problem])
    return check_spec(data, refs, source="<yaml>", lines=lines, text=text)
