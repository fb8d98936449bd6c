"""The latency histogram of the rollups: fixed log-scale buckets, and quantiles with a
distribution-free interval read off a histogram (the rank interval of a quantile)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from aerodrome.evidence.stats import Interval

BUCKETS_PER_DOUBLING = 8
TOP_DOUBLINGS = 21  # the last bounded bucket ends at 2**21 ms (about 35 minutes)
N_BUCKETS = BUCKETS_PER_DOUBLING * TOP_DOUBLINGS + 2
"""Latency histogram: bucket 0 is [0, 1 ms); bucket i (1..168) is [2**((i-1)/8), 2**(i/8)) ms,
each 9.05% wider than the last; bucket 169 is everything from 2**21 ms (about 35 min) up."""


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of a latency in milliseconds."""
    if not latency_ms >= 1.0:  # also NaN
        return 0
    return min(N_BUCKETS - 1, math.floor(BUCKETS_PER_DOUBLING * math.log2(latency_ms)) + 1)


def bucket_edges_ms() -> tuple[list[float], list[float]]:
    """Lower and upper edge (ms) of every bucket; the last upper edge is infinity."""
    lows = [0.0] + [2.0 ** ((i - 1) / BUCKETS_PER_DOUBLING) for i in range(1, N_BUCKETS)]
    highs = [*lows[1:], math.inf]
    return lows, highs


def _binomial_cdf(n: int, p: float) -> npt.NDArray[np.float64]:
    """P(B <= k) for k = 0..n, B ~ Binomial(n, p), 0 < p < 1 (log-space recurrence, exact)."""
    k = np.arange(n, dtype=np.float64)
    steps = np.log((n - k) / (k + 1)) + math.log(p / (1 - p))
    logpmf = np.concatenate(([n * math.log1p(-p)], n * math.log1p(-p) + np.cumsum(steps)))
    cdf = np.cumsum(np.exp(logpmf - logpmf.max()))
    return np.asarray(cdf / cdf[-1], dtype=np.float64)


EXACT_RANKS_UP_TO = 20_000


def _rank_interval(n: int, q: float, confidence: float) -> tuple[int, int]:
    """1-based ranks (l, u) of the order statistics bounding the q quantile at ``confidence``;
    l = 0 means no lower bound, u = n + 1 no upper bound. Exact binomial up to
    :data:`EXACT_RANKS_UP_TO` values, its normal approximation (with a half-rank widening) above."""
    alpha = 1 - confidence
    if n <= EXACT_RANKS_UP_TO:
        cdf = _binomial_cdf(n, q)
        l_rank = int(np.searchsorted(cdf, alpha / 2, side="right"))  # count of k with cdf[k] <= alpha/2
        u_rank = int(np.searchsorted(cdf, 1 - alpha / 2, side="left")) + 1
        return l_rank, u_rank
    z = NormalDist().inv_cdf(1 - alpha / 2)
    sd = math.sqrt(n * q * (1 - q))
    return max(0, math.floor(n * q - z * sd - 0.5)), min(n + 1, math.ceil(n * q + z * sd + 0.5) + 1)


def quantile_from_histogram(hist: Sequence[int], q: float, confidence: float = 0.95) -> Interval:
    """The ``q`` quantile (0 < q < 1) of the latencies in a histogram, in seconds, with a
    distribution-free interval.

    Estimate: numpy's default (linear) percentile, with each order statistic placed by linear
    interpolation inside its bucket, so it lies in the bucket holding the true value.
    Interval: the order statistics ``x(l) <= x(u)`` with ``P(l <= B < u) >= confidence`` for
    ``B ~ Binomial(n, q)`` (the classic rank interval for a quantile), widened to the lower edge
    of ``x(l)``'s bucket and the upper edge of ``x(u)``'s. The resolution is one bucket, 9.05%
    of the value, on each side; the last bucket (from about 35 minutes) has no upper edge.
    """
    counts = np.asarray(hist, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return Interval.empty(confidence)
    if not 0 < q < 1:
        raise ValueError(f"q must be between 0 and 1 (exclusive), got {q}")
    lows, highs = bucket_edges_ms()
    cum = np.cumsum(counts)

    def bucket_of_rank(rank: int) -> int:  # rank: 1-based order statistic
        return int(np.searchsorted(cum, rank, side="left"))

    def value(k: int) -> float:  # the k-th (0-based) order statistic, interpolated in its bucket
        b = bucket_of_rank(k + 1)
        inside = k - (int(cum[b]) - int(counts[b]))
        width = highs[b] - lows[b]
        return lows[b] if not math.isfinite(width) else lows[b] + (inside + 0.5) / int(counts[b]) * width

    h = (n - 1) * q
    below = math.floor(h)
    est = value(below) + (h - below) * (value(min(below + 1, n - 1)) - value(below))
    l_rank, u_rank = _rank_interval(n, q, confidence)
    low = lows[bucket_of_rank(l_rank)] if l_rank >= 1 else 0.0
    high = highs[bucket_of_rank(u_rank)] if u_rank <= n else math.inf
    return Interval(est / 1000, low / 1000, high / 1000, n, confidence)
