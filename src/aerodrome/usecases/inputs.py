"""Standardised inputs: a run's ``inputs`` checked against the spec, 422 naming the field."""

from __future__ import annotations

import math
from typing import Any

import orjson

from aerodrome.errors import UnprocessableInput
from aerodrome.usecases.spec import InputSpec, UseCaseSpec


def _fail(name: str, message: str, code: str = "invalid_input") -> UnprocessableInput:
    return UnprocessableInput(f"inputs.{name}: {message}", param=f"inputs.{name}", code=code)


def _check_one(name: str, spec: InputSpec, value: Any) -> Any:
    kind = spec.type
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            raise _fail(name, f"must be a string, not {type(value).__name__}")
        if kind == "enum":
            if spec.values is not None and value not in spec.values:
                raise _fail(name, f"must be one of {spec.values}")
            return value
        if "\x00" in value:
            raise _fail(name, "must not contain NUL characters")
        if spec.required and not value.strip():
            raise _fail(name, "is required and must not be empty", code="missing_input")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, "must be an integer")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(name, "must be a finite number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _fail(name, "must be true or false")
    elif kind == "array" and not isinstance(value, list):
        raise _fail(name, "must be an array")
    if kind in ("string", "array"):
        size = len(value)
        unit = "characters" if kind == "string" else "items"
        if spec.max_length is not None and size > spec.max_length:
            raise _fail(name, f"is {size} {unit} long; the limit is {spec.max_length}", code="input_too_long")
        if spec.min_length is not None and size < spec.min_length:
            raise _fail(name, f"is {size} {unit} long; at least {spec.min_length} are needed")
    if kind in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            raise _fail(name, f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise _fail(name, f"must be at most {spec.maximum}")
    return value


def validate_inputs(spec: UseCaseSpec, given: Any, *, max_bytes: int) -> dict[str, Any]:
    """The inputs to render with: every rule of the spec holds, defaults filled in; 422 otherwise."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise UnprocessableInput("inputs must be an object of named values", param="inputs")
    size = len(orjson.dumps(given))
    if size > max_bytes:
        raise UnprocessableInput(
            f"inputs are {size} bytes; the limit is {max_bytes}", param="inputs", code="input_too_long"
        )
    extra = sorted(set(given) - set(spec.inputs))
    if extra:
        raise UnprocessableInput(
            f"inputs.{extra[0]}: unknown input; this use case takes {sorted(spec.inputs)}",
            param=f"inputs.{extra[0]}",
            code="unknown_input",
        )
    values: dict[str, Any] = {}
    for name, ispec in spec.inputs.items():
        value = given.get(name)
        if value is None:
            if ispec.required:
                raise _fail(name, "is required", code="missing_input")
            values[name] = ispec.default
            continue
        values[name] = _check_one(name, ispec, value)
    return values
