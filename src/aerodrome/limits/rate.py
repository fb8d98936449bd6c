"""Requests and tokens per minute, by a sliding-window counter (two fixed windows, weighted).

Memory is two numbers per (scope, id); the estimate errs by at most the share of
the previous minute still in the window, the usual trade for O(1) checks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aerodrome.errors import TooManyRequests

WINDOW_S = 60.0


@dataclass(slots=True)
class _Window:
    start: float
    current: float = 0.0
    previous: float = 0.0


class RateLimiter:
    def __init__(self, *, clock: object = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, key: tuple[str, str], now: float) -> _Window:
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window(start=now - (now % WINDOW_S))
            return win
        elapsed = now - win.start
        if elapsed >= WINDOW_S:
            periods = int(elapsed // WINDOW_S)
            win.previous = win.current if periods == 1 else 0.0
            win.current = 0.0
            win.start += periods * WINDOW_S
        return win

    def _estimate(self, win: _Window, now: float) -> float:
        weight = 1.0 - (now - win.start) / WINDOW_S
        return win.previous * weight + win.current

    @staticmethod
    def _retry_after(win: _Window, now: float, limit: float, amount: float) -> float:
        """Seconds until ``amount`` fits, if nothing else is admitted meanwhile.

        The previous window's share decays linearly, so the end of the current window
        is not enough: the count just moves into ``previous`` with full weight.
        """
        if amount > limit:  # admitted only into an empty window
            at = win.start + 2 * WINDOW_S
        elif win.current + amount <= limit:  # this window, once enough of the previous one has decayed
            at = win.start + WINDOW_S * (1.0 - (limit - amount - win.current) / win.previous)
        else:  # the next window, once enough of this one has decayed
            at = win.start + WINDOW_S * (2.0 - (limit - amount) / win.current)
        return max(0.001, at - now)

    def check(self, checks: Sequence[tuple[str, str, int | None, float]], what: str) -> None:
        """Admit ``amount`` on every (scope, id, limit, amount) or raise 429 and admit nothing."""
        now = self._clock()  # type: ignore[operator]
        wins = []
        for scope, ident, limit, amount in checks:
            if limit is None:
                continue
            win = self._window((f"{scope}:{what}", ident), now)
            used = self._estimate(win, now)
            if used + amount > limit and used > 0:
                retry = self._retry_after(win, now, limit, amount)
                raise TooManyRequests(
                    f"{what} limit of {limit} per minute reached for {scope} {ident!r}; retry in {int(retry) + 1} s",
                    retry_after=retry,
                    code="rate_limited",
                )
            wins.append((win, amount))
        for win, amount in wins:
            win.current += amount

    def add(self, adds: Sequence[tuple[str, str, int | None, float]], what: str) -> None:
        """Record usage after the fact (e.g. completion tokens); never refuses."""
        now = self._clock()  # type: ignore[operator]
        for scope, ident, limit, amount in adds:
            if limit is None or amount == 0:
                continue
            self._window((f"{scope}:{what}", ident), now).current += amount
