"""A circuit breaker per deployment: closed → open after N failures → half-open trial."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aerodrome.config import BreakerConfig


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False


class CircuitBreakers:
    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._states: dict[str, _State] = {}

    def allow(self, name: str) -> bool:
        state = self._states.get(name)
        if state is None or state.opened_at is None:
            return True
        if time.monotonic() - state.opened_at < self._config.cooldown_s:
            return False
        if state.trial_in_flight:  # half-open: one trial request at a time
            return False
        state.trial_in_flight = True
        return True

    def success(self, name: str) -> None:
        state = self._states.get(name)
        if state is not None:
            state.failures = 0
            state.opened_at = None
            state.trial_in_flight = False

    def failure(self, name: str) -> None:
        state = self._states.setdefault(name, _State())
        state.failures += 1
        state.trial_in_flight = False
        if state.opened_at is not None or state.failures >= self._config.failures:
            state.opened_at = time.monotonic()

    def state(self, name: str) -> str:
        state = self._states.get(name)
        if state is None or state.opened_at is None:
            return "closed"
        if time.monotonic() - state.opened_at < self._config.cooldown_s:
            return "open"
        return "half_open"
