"""Prompt templates: Jinja2 in an immutable sandbox, strict about undefined names.

A template sees the use case's inputs plus ``context`` (the retrieved passages,
numbered ``[1] ...``), ``passages`` (the same as a list of dicts), ``usecase`` (id,
title, version) and ``today`` (ISO date). It cannot reach Python internals (the
sandbox refuses attribute access to private names and unsafe callables), cannot change
the objects it is given, and its output is capped in size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from aerodrome.errors import AerodromeError

MAX_RENDERED_CHARS = 400_000


class TemplateFailed(AerodromeError):
    """A prompt template failed while rendering: the spec's fault, not the caller's."""

    status = 500
    code = "template_error"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    line: int | None  # line within the template (1-based)
    message: str


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True
    )


class PromptTemplate:
    """One compiled template; thread-safe to render."""

    def __init__(self, source: str, *, name: str) -> None:
        self.source = source
        self.name = name
        self._env = _environment()
        self._template = self._env.from_string(source)

    @staticmethod
    def problems(source: str, allowed: set[str]) -> list[TemplateProblem]:
        """Syntax errors and names that are neither inputs nor template variables."""
        env = _environment()
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            return [TemplateProblem(exc.lineno, f"template syntax error: {exc.message}")]
        found = []
        for name in sorted(meta.find_undeclared_variables(ast) - allowed):
            found.append(
                TemplateProblem(
                    _first_line(ast, name), f"unknown variable {name!r}; known: {sorted(allowed)}"
                )
            )
        return found

    def render(self, variables: dict[str, Any]) -> str:
        try:
            text = self._template.render(**variables)
        except SecurityError as exc:
            raise TemplateFailed(
                f"the {self.name} template did something the sandbox forbids: {exc}"
            ) from None
        except UndefinedError as exc:
            raise TemplateFailed(f"the {self.name} template uses an undefined value: {exc.message}") from None
        except TemplateError as exc:
            raise TemplateFailed(f"the {self.name} template failed: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, OverflowError) as exc:
            raise TemplateFailed(f"the {self.name} template failed: {exc}") from None
        if len(text) > MAX_RENDERED_CHARS:
            raise TemplateFailed(
                f"the {self.name} template rendered {len(text)} characters; the limit is {MAX_RENDERED_CHARS}"
            )
        return text


def _first_line(ast: nodes.Template, name: str) -> int | None:
    for node in ast.find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return None
