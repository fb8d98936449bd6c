"""Bounded memos of the evidence engine's pure computations, keyed by exactly what they read.

Two things a report computes are costly and change far less often than a use case's page is
viewed:

- **bootstrapped intervals** (:mod:`aerodrome.evidence.stats`): deterministic (the same values,
  statistic, confidence, resamples and seed give the same interval) and tens of milliseconds for
  a few thousand timed tasks. :data:`INTERVALS` keys them by a digest of the values themselves
  (their bytes, in order) and every parameter (:func:`digest`): a changed, added or reordered
  value is a different key, never a stale answer.
- **the rollup part of a window** (:func:`aerodrome.evidence.rollups.window`): the rollup rows
  change only in a transaction that also moves the rollup state's watermark and ``updated_at``
  (an update, or a rebuild's reset), so the sums read for a given state are keyed by it.

Process-local (each replica has its own), thread-safe (handlers compute reports in worker
threads) and bounded (the least recently used entry goes first). A memo hands out what it holds:
callers store values they never mutate, or copy them (see ``rollups.window``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class Memo(Generic[T]):
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable) -> T | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def store(self, key: Hashable, value: T) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or what it gave before for ``key``. Computed outside the lock: two
        threads may compute the same value at once, both correctly."""
        found = self.lookup(key)
        if found is not None:
            return found
        value = compute()
        self.store(key, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


def digest(kind: str, samples: Sequence[Iterable[float]], params: tuple[object, ...]) -> bytes:
    """A key for a computation named ``kind`` over ``samples`` (sequences of numbers, compared
    value by value, in order, as float64) with ``params`` (compared by their repr)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(kind.encode())
    h.update(repr(params).encode())
    for values in samples:
        arr = np.ascontiguousarray(np.fromiter(values, dtype=np.float64))
        h.update(arr.size.to_bytes(8, "little"))
        h.update(arr.tobytes())
    return h.digest()
