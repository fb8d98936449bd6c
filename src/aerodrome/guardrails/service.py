"""Guardrail instances with their default configuration, built once and shared (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from aerodrome.errors import BadRequest, ConfigError
from aerodrome.guardrails.base import CheckResult, Guardrail
from aerodrome.guardrails.pii import CustomRecognizer
from aerodrome.guardrails.registry import guardrail_registry

INPUT_CHECKS = ("pii", "prompt_injection")


class Guardrails:
    def __init__(self, pii_recognizers: Sequence[CustomRecognizer] = ()) -> None:
        self._registry = guardrail_registry()
        # the platform's own recognizers (employee ids, ticket numbers) join the default PII check
        self._settings: dict[str, dict[str, Any]] = {
            "pii": {"custom": [r.model_dump() for r in pii_recognizers]}
        }
        self._defaults: dict[str, Guardrail] = {}
        self._lock = threading.Lock()

    def default(self, name: str) -> Guardrail:
        with self._lock:
            found = self._defaults.get(name)
            if found is None:
                try:
                    factory = self._registry.get(name)
                except ConfigError:  # an unknown name is the caller's error here
                    raise BadRequest(
                        f"unknown check {name!r}; checks are {self._registry.names()}", param="checks"
                    ) from None
                found = self._defaults[name] = factory(self._settings.get(name, {}))
            return found

    def check(self, text: str, checks: list[str]) -> dict[str, Any]:
        """Run the named checks with their default settings; findings without the matched values."""
        started = time.perf_counter()
        results: list[CheckResult] = [self.default(name).check(text) for name in dict.fromkeys(checks)]
        worst = "pass"
        for r in results:
            if r.verdict == "block" or (r.verdict == "flag" and worst == "pass"):
                worst = r.verdict
        out: dict[str, Any] = {"verdict": worst, "results": [r.to_dict() for r in results]}
        for r in results:
            if r.check == "pii":
                out["pii"] = [f.to_dict() for f in r.findings]
            elif r.check == "prompt_injection":
                out["prompt_injection"] = {"score": round(r.score, 4), "verdict": r.verdict}
        out["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return out
