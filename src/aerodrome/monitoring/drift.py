"""Drift tests: is a window of live traffic different from the baseline? (docs/monitoring.md)

Each feature has a test with a p-value; a feature drifts when its p-value is under its share of
the use case's false-alarm rate (``false_alarm_rate / number of features``, Bonferroni, so one
window of unshifted traffic raises a drift alert with probability at most ``false_alarm_rate``)
and the change is large enough to matter (``min_rate_change``, ``min_relative_change``).

- **input_centroid**: Hotelling's T² of the window's mean input embedding against the
  baseline's, in 16 fixed random directions of the embedding space (the profiles keep the
  covariance there), ``T² = d' S⁻¹ d / (1/n + 1/N)``, divided by the over-dispersion the
  baseline's own hours show (their mean ``T²/16`` against the rest of the baseline, at least 1,
  with eight hours of five runs or more), referred to ``F(16, N - 16)``. The report also gives the
  plain distance between the centroids.
- **input_length**, **output_length**: a z-test of the mean of ln(1 + characters), its variance
  inflated by the over-dispersion the baseline's own hours show.
- rates (**refusal_rate**, **fallback_rate**, **flag_rate**, **error_rate**: up;
  **useful_rate**: down): a one-sided two-proportion z-test.
- **p95_latency_s**: the window's p95 rank interval lies wholly above the baseline's (both at
  confidence ``1 - alpha``), and the estimate is ``min_relative_change`` higher.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from aerodrome.evidence.stats import Interval
from aerodrome.monitoring.profiles import Profile, projection

Status = Literal["drifted", "stable", "insufficient", "skipped"]
CALIBRATION_HOURS = 8  # baseline hours needed to calibrate the null distribution
MIN_HOUR_RUNS = 5  # a baseline hour with fewer runs does not calibrate


@dataclass(frozen=True, slots=True)
class FeatureResult:
    feature: str
    status: Status
    baseline: float | None = None
    window: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    alpha: float | None = None
    n: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _insufficient(feature: str, n: int, need: int, what: str = "runs") -> FeatureResult:
    return FeatureResult(feature, "insufficient", n=n, note=f"{n} {what}; {need} needed")


# ---------------------------------------------------------------- input embeddings


def _hotelling(diff: np.ndarray, cov: np.ndarray, n_w: int, n_b: int) -> float:
    return float(diff @ np.linalg.solve(cov, diff)) / (1.0 / n_w + 1.0 / n_b)


def centroid_test(baseline_hours: list[Profile], window: Profile, alpha: float, min_n: int) -> FeatureResult:
    name = "input_centroid"
    base = summed(baseline_hours)
    if base.embedding_sum is None or window.embedding_sum is None:
        return FeatureResult(
            name, "skipped", note="no input embeddings (policy off, or the local model missing)"
        )
    if base.embedding_model != window.embedding_model:
        return FeatureResult(name, "skipped", note="baseline and window were embedded by different models")
    if base.projected_outer is None:
        return FeatureResult(name, "skipped", note="the baseline has no projected covariance")
    if base.embedded < min_n or window.embedded < min_n:
        return _insufficient(name, min(base.embedded, window.embedded), min_n, "embedded inputs")
    n_b, n_w = base.embedded, window.embedded
    basis = projection(len(base.embedding_sum))
    d = basis.shape[1]
    mu = base.embedding_sum @ basis / n_b
    cov = base.projected_outer / n_b - np.outer(mu, mu)
    cov += np.eye(d) * (1e-9 + 1e-6 * float(np.trace(cov)) / d)  # ridge: never singular
    t2 = _hotelling(window.embedding_sum @ basis / n_w - mu, cov, n_w, n_b)
    # over-dispersion: each baseline hour against the rest; its mean T²/d is 1 for iid traffic
    per_hour = [
        _hotelling(
            (h.embedding_sum @ basis) / h.embedded
            - ((base.embedding_sum - h.embedding_sum) @ basis) / (n_b - h.embedded),
            cov,
            h.embedded,
            n_b - h.embedded,
        )
        / d
        for h in baseline_hours
        if h.embedding_sum is not None and h.embedded >= MIN_HOUR_RUNS and n_b - h.embedded >= MIN_HOUR_RUNS
    ]
    c = max(1.0, float(np.mean(per_hour))) if len(per_hour) >= CALIBRATION_HOURS else 1.0
    dof = max(n_b - d, 1)
    f_stat = (t2 / c) * dof / (d * max(n_b - 1, 1))
    p = float(sps.f.sf(f_stat, d, dof))
    distance = float(np.linalg.norm(window.embedding_sum / n_w - base.embedding_sum / n_b))
    return FeatureResult(
        name,
        "drifted" if p < alpha else "stable",
        baseline=0.0,
        window=distance,
        statistic=t2,
        p_value=p,
        alpha=alpha,
        n=n_w,
        note=f"centroid distance; Hotelling T² in {d} projected directions, over-dispersion {c:.2f} from {len(per_hour)} baseline hours",
    )


# ---------------------------------------------------------------- lengths


def _moments(n: int, total: float, sq: float) -> tuple[float, float]:
    mean = total / n
    return mean, max(sq / n - mean * mean, 0.0) * n / max(n - 1, 1)


def length_test(
    feature: Literal["input_length", "output_length"],
    baseline_hours: list[Profile],
    window: Profile,
    alpha: float,
    min_n: int,
    min_change: float,
) -> FeatureResult:
    prefix = "input" if feature == "input_length" else "output"

    def stats_of(p: Profile) -> tuple[int, float, float]:
        return getattr(p, f"{prefix}_n"), getattr(p, f"{prefix}_len_sum"), getattr(p, f"{prefix}_len_sq")

    base = summed(baseline_hours)
    n_b, s_b, q_b = stats_of(base)
    n_w, s_w, q_w = stats_of(window)
    if n_b < min_n or n_w < min_n:
        return _insufficient(feature, min(n_b, n_w), min_n)
    m_b, v_b = _moments(n_b, s_b, q_b)
    m_w, v_w = _moments(n_w, s_w, q_w)
    # over-dispersion: the squared z of each baseline hour against the rest averages 1 for iid traffic
    zs = []
    for h in baseline_hours:
        n_h, s_h, _ = stats_of(h)
        if n_h >= MIN_HOUR_RUNS and n_b - n_h >= MIN_HOUR_RUNS and v_b > 0:
            m_rest = (s_b - s_h) / (n_b - n_h)
            zs.append((s_h / n_h - m_rest) ** 2 / (v_b * (1 / n_h + 1 / (n_b - n_h))))
    inflate = max(1.0, float(np.mean(zs))) if len(zs) >= CALIBRATION_HOURS else 1.0
    se = math.sqrt(inflate * (v_w / n_w + v_b / n_b))
    if se == 0:
        return FeatureResult(feature, "skipped", note="every length is the same")
    z = (m_w - m_b) / se
    p = float(2 * sps.norm.sf(abs(z)))
    base_chars, win_chars = math.expm1(m_b), math.expm1(m_w)
    big = abs(math.exp(m_w - m_b) - 1) >= min_change
    return FeatureResult(
        feature,
        "drifted" if p < alpha and big else "stable",
        baseline=base_chars,
        window=win_chars,
        statistic=z,
        p_value=p,
        alpha=alpha,
        n=n_w,
        note="geometric mean characters",
    )


# ---------------------------------------------------------------- rates and latency


def rate_test(
    feature: str,
    x_b: int,
    n_b: int,
    x_w: int,
    n_w: int,
    *,
    worse: Literal["up", "down"],
    alpha: float,
    min_n: int,
    min_change: float,
) -> FeatureResult:
    if n_b < min_n or n_w < min_n:
        return _insufficient(feature, min(n_b, n_w), min_n)
    p_b, p_w = x_b / n_b, x_w / n_w
    pooled = (x_b + x_w) / (n_b + n_w)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_w))
    delta = p_w - p_b if worse == "up" else p_b - p_w
    if se == 0:
        p = 1.0 if delta <= 0 else 0.0
        z = 0.0
    else:
        z = delta / se
        p = float(sps.norm.sf(z))
    return FeatureResult(
        feature,
        "drifted" if p < alpha and delta >= min_change else "stable",
        baseline=p_b,
        window=p_w,
        statistic=z,
        p_value=p,
        alpha=alpha,
        n=n_w,
    )


def counts(interval: Interval) -> tuple[int, int]:
    """(successes, n) of a rate interval from the evidence engine."""
    if interval.estimate is None:
        return 0, 0
    return round(interval.estimate * interval.n), interval.n


def latency_test(
    baseline: Interval, window: Interval, *, alpha: float, min_n: int, min_change: float
) -> FeatureResult:
    name = "p95_latency_s"
    if baseline.estimate is None or window.estimate is None or baseline.n < min_n or window.n < min_n:
        return _insufficient(name, min(baseline.n, window.n), min_n, "answered runs")
    drifted = window.low > baseline.high and window.estimate >= baseline.estimate * (1 + min_change)
    return FeatureResult(
        name,
        "drifted" if drifted else "stable",
        baseline=baseline.estimate,
        window=window.estimate,
        alpha=alpha,
        n=window.n,
        note=f"rank intervals at {1 - alpha:.4g}: window low {window.low:.3f}s vs baseline high {baseline.high:.3f}s",
    )


def summed(hours: list[Profile]) -> Profile:
    out = Profile()
    for h in hours:
        out.merge(h)
    return out
