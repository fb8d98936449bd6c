"""One gateway call as it goes through the pipeline, and the run record it becomes."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aerodrome.catalog.catalog import ResolvedAlias
from aerodrome.identity.principal import Principal
from aerodrome.limits.backend import Admission
from aerodrome.routing.router import Attempts


def new_run_id() -> str:
    """Time-ordered, 32 hex characters: 12 of milliseconds, 20 random."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass(slots=True)
class RunContext:
    endpoint: str
    request_id: str
    run_id: str = field(default_factory=new_run_id)
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    principal: Principal | None = None
    model: str | None = None
    resolved: ResolvedAlias | None = None
    stream: bool = False
    include_usage: bool = False
    prompt_estimate: int = 0
    reservation: Admission | None = None
    attempts: Attempts = field(default_factory=Attempts)
    ttft_s: float | None = None
    finished: bool = False
    logging_policy: str = "metadata"
    request_body: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    data_class: str | None = None  # the highest class of the request's data, when declared
    rerouted_from: str | None = None  # the alias asked for, when its safe alias served instead
    usecase_id: str | None = None
    spec_version: int | None = None
    usecase_meta: dict[str, Any] = field(default_factory=dict)  # guardrail results, citations, review
    usecase_inputs: dict[str, Any] | None = None  # the inputs as sent to the model (after redaction)
    pin_deployment: str | None = None  # evaluations: serve the alias with this deployment only
    cache_key: str | None = None  # set when the alias caches answers
    cache_hit: bool = False
    cache_match: str | None = None  # a hit's kind: exact | semantic
    cache_similarity: float | None = None  # a semantic hit's cosine similarity
    cache_bypass: bool = False  # the caller sent x-aerodrome-cache: bypass

    def headers(self) -> dict[str, str]:
        headers = {"x-aerodrome-run-id": self.run_id, "x-request-id": self.request_id}
        if self.attempts.deployment is not None:
            headers["x-aerodrome-deployment"] = self.attempts.deployment.name
        if self.resolved is not None and self.resolved.warnings:
            headers["x-aerodrome-warning"] = "; ".join(self.resolved.warnings)
        if self.cache_key is not None:
            headers["x-aerodrome-cache"] = "hit" if self.cache_hit else "miss"
            if self.cache_match is not None:
                headers["x-aerodrome-cache-match"] = self.cache_match
        elif self.cache_bypass and self.resolved is not None and self.resolved.alias.cache is not None:
            headers["x-aerodrome-cache"] = "bypass"
        if self.reservation is not None and self.reservation.warnings:
            headers["x-aerodrome-budget-warning"] = "; ".join(self.reservation.warnings)
        return headers
