"""A circuit breaker per deployment: closed → open after N failures → half-open trial.

``available`` is a look (may this deployment be tried at all?); ``allow`` takes the
half-open trial slot, so call it only right before actually calling the deployment,
and end every allowed call with ``success``, ``failure`` or ``release``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aerodrome.config import BreakerConfig


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False


class CircuitBreakers:
    def __init__(self, config: BreakerConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._states: dict[str, _State] = {}

    def available(self, name: str) -> bool:
        """Whether a call may be tried now (closed, or half-open with no trial running); takes nothing."""
        state = self._states.get(name)
        if state is None or state.opened_at is None:
            return True
        if self._clock() - state.opened_at < self._config.cooldown_s:
            return False
        return not state.trial_in_flight

    def allow(self, name: str) -> bool:
        """Whether to call now; in half-open state this takes the one trial slot."""
        state = self._states.get(name)
        if state is None or state.opened_at is None:
            return True
        if self._clock() - state.opened_at < self._config.cooldown_s:
            return False
        if state.trial_in_flight:  # half-open: one trial request at a time
            return False
        state.trial_in_flight = True
        return True

    def release(self, name: str) -> None:
        """An allowed call ended without telling whether the deployment is healthy (cancelled, 4xx)."""
        state = self._states.get(name)
        if state is not None:
            state.trial_in_flight = False

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
            state.opened_at = self._clock()

    def state(self, name: str) -> str:
        state = self._states.get(name)
        if state is None or state.opened_at is None:
            return "closed"
        if self._clock() - state.opened_at < self._config.cooldown_s:
            return "open"
        return "half_open"
