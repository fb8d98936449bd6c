"""Intervals for the evidence engine: Wilson for rates, percentile bootstrap for the rest.

Pure functions over plain numbers (no database, no HTTP); numpy only. Every result is an
:class:`Interval` that carries its sample size, so a verdict can refuse to judge too little
data. Bootstraps are deterministic: the same values and seed give the same interval, so a
report recomputed from the same rows reads the same.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Statistic = Callable[[Array], Array]
"""Reduces a (resamples, n) array along axis 1 to one value per resample."""

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0

CONCENTRATION_FLAG = 0.5
"""Top-two share above which evidence is flagged as concentrated.

With ten or more active users an even spread gives the top two about 20% or less; once two
people produce more than half of the runs or positive ratings, the evidence describes those two
rather than the department. Pilots with four users or fewer exceed it by construction, which is
intended: that is too few people to generalise from.
"""

_BATCH_CELLS = 2_000_000  # resampled values held in memory at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval and the sample size behind it.

    ``estimate`` is None when there is no data; the interval is then the widest possible
    (``[0, 1]`` for rates, ``(-inf, inf)`` otherwise). ``exact`` intervals (counts) have
    ``low == high == estimate``.
    """

    estimate: float | None
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @classmethod
    def exact(cls, value: float, n: int) -> Interval:
        """A value known without sampling error, e.g. a count of weekly active users."""
        return cls(float(value), float(value), float(value), n, 1.0)

    @classmethod
    def empty(cls, confidence: float = 0.95, low: float = -math.inf, high: float = math.inf) -> Interval:
        return cls(None, low, high, 0, confidence)

    def scaled(self, factor: float) -> Interval:
        """The interval of ``factor x statistic`` (factor >= 0), e.g. a monthly projection."""
        if factor < 0:
            raise ValueError("factor must be non-negative")
        est = None if self.estimate is None else self.estimate * factor
        return Interval(est, self.low * factor, self.high * factor, self.n, self.confidence)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: infinite bounds become None."""

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "estimate": self.estimate,
            "low": finite(self.low),
            "high": finite(self.high),
            "n": self.n,
            "confidence": self.confidence,
        }


def _z(confidence: float) -> float:
    _check_confidence(confidence)
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _array(values: Iterable[float], name: str = "values") -> Array:
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return arr


# --- rates --------------------------------------------------------------------------------


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (good coverage even near 0, 1 and for small n).

    ``n == 0`` gives estimate None and the interval ``[0, 1]``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    z = _z(confidence)
    if n == 0:
        return Interval.empty(confidence, 0.0, 1.0)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, n, confidence)


# --- bootstrap ----------------------------------------------------------------------------


def _median(a: Array) -> Array:
    return np.median(a, axis=1)


def _mean(a: Array) -> Array:
    return np.mean(a, axis=1)


def _replicates(arr: Array, statistic: Statistic, resamples: int, rng: np.random.Generator) -> Array:
    """``statistic`` of ``resamples`` resamples (with replacement) of ``arr``, in batches."""
    n = arr.size
    batch = max(1, _BATCH_CELLS // n)
    out = np.empty(resamples, dtype=np.float64)
    median = _MedianOfResamples(arr) if statistic is _median else None
    for start in range(0, resamples, batch):
        stop = min(resamples, start + batch)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = statistic(arr[idx]) if median is None else median(idx)
    return out


class _MedianOfResamples:
    """``np.median(arr[idx], axis=1)``, the same numbers, by counting instead of partitioning.

    A resample's k-th smallest value is ``sorted_arr[j]`` for the first sorted position ``j`` at
    which the resample's cumulative count of drawn positions exceeds k; the median is that value
    (odd n) or the mean of the two middle ones (even n), exactly as numpy forms it. One bincount
    and one cumulative sum per batch replace a partition of every row (about twice as fast)."""

    def __init__(self, arr: Array) -> None:
        order = np.argsort(arr, kind="stable")
        self.sorted = arr[order]
        self.rank = np.empty(arr.size, dtype=np.intp)
        self.rank[order] = np.arange(arr.size)

    def __call__(self, idx: npt.NDArray[np.int64]) -> Array:
        rows, n = idx.shape
        flat = (self.rank[idx] + (np.arange(rows) * n)[:, None]).ravel()
        cumulative = np.cumsum(np.bincount(flat, minlength=rows * n).reshape(rows, n), axis=1)
        low = (cumulative <= (n - 1) // 2).sum(axis=1)
        if n % 2:
            result: Array = self.sorted[low]
            return result
        high = (cumulative <= n // 2).sum(axis=1)
        return (self.sorted[low] + self.sorted[high]) / 2


def _percentile_interval(replicates: Array, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return float(low), float(high)


def _check_resamples(resamples: int) -> None:
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, got {resamples}")


def bootstrap(
    values: Iterable[float],
    statistic: Statistic,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile bootstrap of any statistic that reduces a 2-D array along axis 1.

    The estimate is the statistic of the data itself; the interval is the central
    ``confidence`` share of the statistic over resamples. No values gives estimate None and
    ``(-inf, inf)``.
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    arr = _array(values)
    if arr.size == 0:
        return Interval.empty(confidence)
    estimate = float(statistic(arr[np.newaxis, :])[0])
    reps = _replicates(arr, statistic, resamples, np.random.default_rng(seed))
    low, high = _percentile_interval(reps, confidence)
    return Interval(estimate, low, high, int(arr.size), confidence)


def bootstrap_median(
    values: Iterable[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Median with a percentile-bootstrap interval (e.g. median task duration)."""
    return bootstrap(values, _median, confidence, resamples, seed)


def bootstrap_mean(
    values: Iterable[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Mean with a percentile-bootstrap interval (e.g. cost per run, cost per task)."""
    return bootstrap(values, _mean, confidence, resamples, seed)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics
    (numpy's default, Excel's PERCENTILE.INC); None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    arr = _array(values)
    return None if arr.size == 0 else float(np.percentile(arr, q))


def bootstrap_percentile(
    values: Iterable[float],
    q: float,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """The ``q``-th percentile (0-100) with a bootstrap interval, e.g. p95 latency (q=95).

    Tail percentiles need data in the tail: with fewer than about 20 / (1 - q/100) values
    (400 for p95) the interval is wide and mostly reflects the largest few values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    return bootstrap(values, lambda a: np.percentile(a, q, axis=1), confidence, resamples, seed)


def bootstrap_ratio(
    numerators: Iterable[float],
    denominators: Iterable[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Ratio of totals ``sum(numerators) / sum(denominators)`` over paired observations.

    Pairs are resampled together, e.g. characters a reviewer changed over characters of the
    output for each review (edit_ratio). Denominators must be non-negative with a positive
    total; resamples whose denominator total is zero are dropped.
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    num = _array(numerators, "numerators")
    den = _array(denominators, "denominators")
    if num.size != den.size:
        raise ValueError("numerators and denominators must pair up (same length)")
    if np.any(den < 0):
        raise ValueError("denominators must be non-negative")
    if num.size == 0:
        return Interval.empty(confidence)
    if den.sum() <= 0:
        raise ValueError("the denominators sum to zero: the ratio is undefined")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, num.size, size=(resamples, num.size))
    den_tot = den[idx].sum(axis=1)
    keep = den_tot > 0
    reps = num[idx].sum(axis=1)[keep] / den_tot[keep]
    low, high = _percentile_interval(reps, confidence)
    return Interval(float(num.sum() / den.sum()), low, high, int(num.size), confidence)


def time_saved(
    baseline_durations: Iterable[float],
    treatment_durations: Iterable[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Relative saving of the median task time: ``1 - median(treatment) / median(baseline)``.

    0.25 means the typical task takes a quarter less time; negative means it got slower. The
    two groups are resampled independently (they are different tasks, often different
    people). ``n`` is the size of the smaller group, the one that limits precision. Either
    group empty gives estimate None and ``(-inf, inf)``. Durations must be positive.
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    base = _array(baseline_durations, "baseline_durations")
    treat = _array(treatment_durations, "treatment_durations")
    if np.any(base <= 0) or np.any(treat <= 0):
        raise ValueError("durations must be positive")
    if base.size == 0 or treat.size == 0:
        return Interval.empty(confidence)
    rng = np.random.default_rng(seed)
    base_reps = _replicates(base, _median, resamples, rng)
    treat_reps = _replicates(treat, _median, resamples, rng)
    low, high = _percentile_interval(1 - treat_reps / base_reps, confidence)
    estimate = 1 - float(np.median(treat)) / float(np.median(base))
    return Interval(estimate, low, high, int(min(base.size, treat.size)), confidence)


def projected_monthly_cost(
    task_costs: Iterable[float],
    tasks_per_day: float,
    days: float = 30,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Monthly cost at the declared volume: mean cost per task x tasks_per_day x days.

    The interval is the bootstrap interval of the mean cost per task, scaled; it reflects
    uncertainty in the cost per task, not in the volume, which is taken as declared.
    """
    if tasks_per_day < 0 or days < 0:
        raise ValueError("tasks_per_day and days must be non-negative")
    return bootstrap_mean(task_costs, confidence, resamples, seed).scaled(tasks_per_day * days)


# --- adoption -----------------------------------------------------------------------------


def concentration(counts_by_user: Mapping[str, int], top: int = 2) -> float:
    """Share of the total contributed by the ``top`` largest users (0 when there is none).

    Apply to runs or to positive ratings per user; above :data:`CONCENTRATION_FLAG` the
    evidence rests on too few people.
    """
    if top < 1:
        raise ValueError("top must be at least 1")
    if any(c < 0 for c in counts_by_user.values()):
        raise ValueError("counts must be non-negative")
    total = sum(counts_by_user.values())
    if total == 0:
        return 0.0
    return sum(heapq.nlargest(top, counts_by_user.values())) / total


def iso_week(day: date) -> str:
    """The ISO 8601 week of a date (or datetime) as ``YYYY-Www``, e.g. ``2026-W05``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _week_index(week: str) -> int:
    """Consecutive integer for an ISO week, so that week + 4 crosses year ends correctly."""
    try:
        year_s, week_s = week.split("-W")
        monday = date.fromisocalendar(int(year_s), int(week_s), 1)
    except ValueError:
        raise ValueError(f"not an ISO week (YYYY-Www): {week!r}") from None
    return (monday.toordinal() - 1) // 7


def _week_label(index: int) -> str:
    return iso_week(date.fromordinal(index * 7 + 1))


def weekly_active(
    active_weeks_by_user: Mapping[str, Iterable[str]],
    first_week: str | None = None,
    last_week: str | None = None,
) -> dict[str, int]:
    """Number of distinct active users per ISO week, every week from first to last included
    (weeks nobody was active count 0). The range defaults to the weeks present in the data."""
    counts: dict[int, int] = {}
    for weeks in active_weeks_by_user.values():
        for idx in {_week_index(w) for w in weeks}:
            counts[idx] = counts.get(idx, 0) + 1
    if not counts and (first_week is None or last_week is None):
        return {}
    lo = _week_index(first_week) if first_week is not None else min(counts)
    hi = _week_index(last_week) if last_week is not None else max(counts)
    return {_week_label(i): counts.get(i, 0) for i in range(lo, hi + 1)}


def retention_4w(
    active_weeks_by_user: Mapping[str, Iterable[str]],
    window_end: str | None = None,
    confidence: float = 0.95,
) -> Interval:
    """Four-week retention, with a Wilson interval.

    A user's first week ``f`` is their earliest active ISO week. Users with ``f + 4`` on or
    before ``window_end`` (inclusive; default: the latest week in the data) could have come
    back and are counted in ``n``; a user is retained when active in week ``f + 4`` exactly,
    i.e. in the fifth calendar week counting the first (classic week-N retention). Users who
    started later than ``window_end - 4`` are left out rather than counted as lost.
    """
    indexed = {user: {_week_index(w) for w in weeks} for user, weeks in active_weeks_by_user.items()}
    end = _week_index(window_end) if window_end is not None else None
    return retention_4w_indexed(indexed, end, confidence)


def retention_4w_indexed(
    active_weeks_by_user: Mapping[str, Collection[int]],
    window_end: int | None = None,
    confidence: float = 0.95,
) -> Interval:
    """:func:`retention_4w` with weeks as consecutive indices (Monday ordinal - 1) // 7, as the
    rollups count them, instead of ``YYYY-Www`` labels: the same result without the parsing."""
    firsts: dict[str, tuple[int, Collection[int]]] = {}
    for user, idx in active_weeks_by_user.items():
        if idx:
            firsts[user] = (min(idx), idx)
    if not firsts:
        return wilson(0, 0, confidence)
    end = window_end if window_end is not None else max(max(s) for _, s in firsts.values())
    eligible = [(first, weeks) for first, weeks in firsts.values() if first + 4 <= end]
    retained = sum(1 for first, weeks in eligible if first + 4 in weeks)
    return wilson(retained, len(eligible), confidence)
