"""Evidence statistics against independent computations on data with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aerodrome.evidence.stats import (
    CONCENTRATION_FLAG,
    Interval,
    bootstrap_mean,
    bootstrap_median,
    bootstrap_percentile,
    bootstrap_ratio,
    concentration,
    iso_week,
    percentile,
    projected_monthly_cost,
    retention_4w,
    time_saved,
    weekly_active,
    wilson,
)

Z95 = 1.959963984540054


# --- Wilson ---------------------------------------------------------------------------------


def test_wilson_matches_hand_computation() -> None:
    # 8 of 10, z = 1.96: centre = (0.8 + z²/20) / (1 + z²/10) = 0.716760,
    # half = z·sqrt(0.8·0.2/10 + z²/400) / (1 + z²/10) = 0.226578 -> [0.490162, 0.943318]
    ci = wilson(8, 10)
    assert ci.estimate == 0.8
    assert ci.n == 10
    assert ci.low == pytest.approx(0.4901625, abs=1e-6)
    assert ci.high == pytest.approx(0.9433178, abs=1e-6)
    # 81 of 263 at 90% (z = 1.644854), the published Wilson bounds.
    ci90 = wilson(81, 263, confidence=0.90)
    assert (ci90.low, ci90.high) == pytest.approx((0.2633136, 0.3565663), abs=1e-6)
    assert ci90.confidence == 0.90


def test_wilson_edges() -> None:
    empty = wilson(0, 0)
    assert (empty.estimate, empty.low, empty.high, empty.n) == (None, 0.0, 1.0, 0)
    none = wilson(0, 10)
    assert none.low == 0.0 and none.high == pytest.approx(Z95**2 / (10 + Z95**2))
    allof = wilson(10, 10)
    assert allof.high == 1.0 and allof.low == pytest.approx(10 / (10 + Z95**2))
    with pytest.raises(ValueError):
        wilson(11, 10)
    with pytest.raises(ValueError):
        wilson(1, 10, confidence=1.0)


def test_wilson_covers_true_p_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(20261122)
    p, n, trials = 0.3, 60, 2000
    hits = rng.binomial(n, p, size=trials)
    covered = sum(1 for k in hits if (ci := wilson(int(k), n)).low <= p <= ci.high)
    assert 0.93 <= covered / trials <= 0.97
    # and a narrower level covers less, as it should
    covered80 = sum(1 for k in hits if (ci := wilson(int(k), n, 0.80)).low <= p <= ci.high)
    assert 0.75 <= covered80 / trials <= 0.85


# --- bootstraps -----------------------------------------------------------------------------


def test_bootstrap_median_width_matches_asymptotic_theory() -> None:
    # The sample median of N(μ, 1) has standard error sqrt(π/2)/sqrt(n). One sample's
    # bootstrap width depends on how the values near its median happen to be spaced, so
    # compare the average over 20 samples.
    n = 500
    halves = []
    for seed in range(20):
        ci = bootstrap_median(np.random.default_rng(seed).normal(10.0, 1.0, n), resamples=500)
        halves.append((ci.high - ci.low) / 2)
    expected_half = Z95 * math.sqrt(math.pi / 2) / math.sqrt(n)
    assert float(np.mean(halves)) == pytest.approx(expected_half, rel=0.1)


def test_bootstrap_median_is_deterministic_with_its_seed() -> None:
    values = np.random.default_rng(7).normal(10.0, 1.0, 300)
    ci = bootstrap_median(values, seed=3)
    assert ci.estimate == pytest.approx(float(np.median(values)))
    assert ci.low < ci.estimate < ci.high
    assert bootstrap_median(values, seed=3) == ci
    assert bootstrap_median(values, seed=4) != ci
    assert bootstrap_median([]) == Interval(None, -math.inf, math.inf, 0, 0.95)


def test_bootstrap_median_coverage() -> None:
    # Over many samples the 90% interval holds the true median (10) about 90% of the time.
    trials = 100
    covered = 0
    for seed in range(trials):
        values = np.random.default_rng(500 + seed).normal(10.0, 1.0, 200)
        ci = bootstrap_median(values, confidence=0.90, resamples=400, seed=seed)
        covered += ci.low <= 10.0 <= ci.high
    assert 0.82 <= covered / trials <= 0.97


def test_bootstrap_mean_matches_normal_theory() -> None:
    rng = np.random.default_rng(11)
    n = 800
    values = rng.gamma(2.0, 0.02, n)  # mean 0.04, sd 0.02·sqrt(2)
    ci = bootstrap_mean(values)
    assert ci.estimate == pytest.approx(float(values.mean()))
    assert ci.low < 0.04 < ci.high
    expected_half = Z95 * float(values.std(ddof=1)) / math.sqrt(n)
    assert (ci.high - ci.low) / 2 == pytest.approx(expected_half, rel=0.15)


def test_percentile_linear_interpolation_by_hand() -> None:
    values = list(range(1, 101))  # 1..100
    # position (n - 1)·q/100 = 94.05 -> 95 + 0.05·(96 - 95)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile([4.0], 95) == 4.0
    assert percentile([], 95) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_p95_interval_contains_true_quantile_with_asymptotic_width() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    latencies = rng.exponential(1.0, n)  # p95 = ln 20
    ci = bootstrap_percentile(latencies, 95)
    true_p95 = math.log(20)
    assert ci.estimate == pytest.approx(float(np.percentile(latencies, 95)))
    assert ci.low < true_p95 < ci.high
    # SE of a quantile: sqrt(p(1-p)) / (f(x_p)·sqrt(n)), f(x_p) = 0.05 for Exp(1)
    expected_half = Z95 * math.sqrt(0.95 * 0.05) / 0.05 / math.sqrt(n)
    assert (ci.high - ci.low) / 2 == pytest.approx(expected_half, rel=0.3)


def test_bootstrap_ratio_of_totals() -> None:
    rng = np.random.default_rng(9)
    lengths = rng.integers(200, 2000, 500).astype(float)
    edited = rng.binomial(lengths.astype(int), 0.1).astype(float)  # 10% of characters changed
    ci = bootstrap_ratio(edited, lengths)
    assert ci.estimate == pytest.approx(edited.sum() / lengths.sum())
    assert ci.low < 0.1 < ci.high
    assert ci.high - ci.low < 0.01
    with pytest.raises(ValueError):
        bootstrap_ratio([1.0], [1.0, 2.0])


def _saving_data(seed: int, saving: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Different spreads, so that the saving by means (about 1 - 0.76 x (1 - saving)) differs
    # from the ratio of medians: a mean-based implementation would miss the true saving.
    rng = np.random.default_rng(seed)
    baseline = rng.lognormal(math.log(600), 0.8, n)  # median 600 s
    treatment = rng.lognormal(math.log(600 * (1 - saving)), 0.3, n)
    return baseline, treatment


def test_time_saved_finds_a_true_25_percent_saving() -> None:
    baseline, treatment = _saving_data(1, 0.25, 400)
    ci = time_saved(baseline, treatment)
    assert ci.estimate == pytest.approx(1 - np.median(treatment) / np.median(baseline))
    assert ci.low < 0.25 < ci.high
    assert ci.low > 0  # enough samples to exclude "no saving"
    assert ci.n == 400


def test_time_saved_finds_no_saving_when_there_is_none() -> None:
    baseline, treatment = _saving_data(2, 0.0, 400)
    ci = time_saved(baseline, treatment)
    assert ci.low < 0 < ci.high


def test_time_saved_small_samples_give_a_wide_interval() -> None:
    baseline, treatment = _saving_data(3, 0.25, 8)
    ci = time_saved(baseline, treatment)
    assert ci.high - ci.low > 0.4
    assert ci.n == 8


def test_time_saved_interval_coverage() -> None:
    # Over many independent pilots the 90% interval holds the true 25% saving ~90% of the time.
    trials = 80
    covered = 0
    for seed in range(trials):
        baseline, treatment = _saving_data(1000 + seed, 0.25, 150)
        ci = time_saved(baseline, treatment, confidence=0.90, resamples=400, seed=seed)
        covered += ci.low <= 0.25 <= ci.high
    assert 0.8 <= covered / trials <= 0.98


def test_time_saved_groups_of_different_size_and_bad_input() -> None:
    baseline, treatment = _saving_data(4, 0.25, 300)
    assert time_saved(baseline, treatment[:120]).n == 120
    assert time_saved([], treatment).estimate is None
    with pytest.raises(ValueError):
        time_saved([600.0, 0.0], [450.0])
    with pytest.raises(ValueError):
        time_saved([600.0, math.nan], [450.0])


def test_projected_monthly_cost_scales_the_mean() -> None:
    rng = np.random.default_rng(12)
    task_costs = rng.gamma(4.0, 0.01, 1000)  # mean 0.04 USD per task
    per_task = bootstrap_mean(task_costs)
    monthly = projected_monthly_cost(task_costs, tasks_per_day=5000)
    assert monthly.estimate == pytest.approx(float(task_costs.mean()) * 150_000)
    assert monthly.low == pytest.approx(per_task.low * 150_000)
    assert monthly.high == pytest.approx(per_task.high * 150_000)
    assert monthly.low < 6000 < monthly.high  # true: 0.04 x 5000 x 30
    assert projected_monthly_cost([], 5000).estimate is None


def test_interval_as_dict_is_json_safe() -> None:
    assert bootstrap_mean([]).as_dict() == {
        "estimate": None,
        "low": None,
        "high": None,
        "n": 0,
        "confidence": 0.95,
    }


# --- adoption -------------------------------------------------------------------------------


def test_two_users_with_most_positive_ratings_raise_the_flag() -> None:
    positives = {"ana": 60, "ben": 55} | {f"user{i}": 3 for i in range(10)}
    assert concentration(positives) == pytest.approx(115 / 145)
    assert concentration(positives) > CONCENTRATION_FLAG
    spread = {f"user{i}": 5 for i in range(20)}
    assert concentration(spread) == pytest.approx(0.1)
    assert concentration(spread) < CONCENTRATION_FLAG
    assert concentration({}) == 0.0
    assert concentration({"ana": 3, "ben": 1, "cy": 1}, top=1) == pytest.approx(0.6)


def test_iso_weeks_and_weekly_active() -> None:
    from datetime import date

    assert iso_week(date(2026, 1, 1)) == "2026-W01"
    assert iso_week(date(2025, 12, 29)) == "2026-W01"  # ISO weeks start on Monday
    users = {
        "a": {"2026-W01", "2026-W03"},
        "b": ["2026-W01", "2026-W01", "2026-W02"],  # duplicates count once
        "c": {"2026-W03"},
    }
    assert weekly_active(users) == {"2026-W01": 2, "2026-W02": 1, "2026-W03": 2}
    assert weekly_active(users, last_week="2026-W04") == {
        "2026-W01": 2,
        "2026-W02": 1,
        "2026-W03": 2,
        "2026-W04": 0,
    }
    # 2026 has 53 ISO weeks
    assert list(weekly_active({"a": {"2026-W52", "2027-W01"}})) == ["2026-W52", "2026-W53", "2027-W01"]
    with pytest.raises(ValueError):
        weekly_active({"a": {"2026-13"}})


def test_retention_4w_by_hand() -> None:
    users = {
        "a": {"2026-W01", "2026-W05"},  # first W01, back in W05: retained
        "b": {"2026-W01", "2026-W02", "2026-W03"},  # eligible, not in W05: lost
        "c": {"2026-W03", "2026-W07"},  # retained
        "d": {"2026-W05", "2026-W09"},  # W09 is after the window end W08: not eligible
        "e": {"2026-W02", "2026-W06", "2026-W07"},  # retained
        "f": {"2026-W04"},  # W04 + 4 = W08 is in the window: lost
        "g": set(),  # never active: ignored
    }
    ci = retention_4w(users, window_end="2026-W08")
    assert (ci.estimate, ci.n) == (pytest.approx(3 / 5), 5)
    assert (ci.low, ci.high) == (wilson(3, 5).low, wilson(3, 5).high)
    # default window end: the latest week seen (W09), which makes d eligible and retained
    default = retention_4w(users)
    assert (default.estimate, default.n) == (pytest.approx(4 / 6), 6)


def test_retention_4w_across_year_end() -> None:
    # 2025 has 52 ISO weeks, 2026 has 53: four weeks after 2025-W52 is 2026-W04,
    # four weeks after 2026-W51 is 2027-W02.
    users = {
        "a": {"2025-W52", "2026-W04"},
        "b": {"2026-W51", "2027-W02"},
        "c": {"2026-W51", "2027-W03"},
    }
    ci = retention_4w(users, window_end="2027-W05")
    assert (ci.estimate, ci.n) == (pytest.approx(2 / 3), 3)
    assert retention_4w({}).estimate is None
