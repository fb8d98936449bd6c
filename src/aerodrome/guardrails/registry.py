"""Guardrail kinds by name, built-ins and entry points alike (group ``aerodrome.guardrails``).

A factory takes the check's configuration (a mapping, validated by the check's own
pydantic model) and returns a :class:`aerodrome.guardrails.base.Guardrail`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aerodrome.guardrails.base import Guardrail
from aerodrome.hookspecs import GUARDRAILS_GROUP, Registry

GuardrailFactory = Callable[[Mapping[str, Any]], Guardrail]


def _pii(config: Mapping[str, Any]) -> Guardrail:
    from aerodrome.guardrails.pii import PiiConfig, PiiGuardrail

    return PiiGuardrail(PiiConfig.model_validate(dict(config)))


def _injection(config: Mapping[str, Any]) -> Guardrail:
    from aerodrome.guardrails.injection import InjectionConfig, InjectionGuardrail

    return InjectionGuardrail(InjectionConfig.model_validate(dict(config)))


def _output(config: Mapping[str, Any]) -> Guardrail:
    from aerodrome.guardrails.output import OutputConfig, OutputGuardrail

    return OutputGuardrail(OutputConfig.model_validate(dict(config)))


def guardrail_registry() -> Registry[GuardrailFactory]:
    builtins: dict[str, GuardrailFactory] = {"pii": _pii, "prompt_injection": _injection, "output": _output}
    return Registry(GUARDRAILS_GROUP, builtins)
