"""RateLimiter (sliding window) and BudgetLedger (reserve, settle, soft warning, periods) with injected clocks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from aerodrome.config import Budget
from aerodrome.errors import BudgetExceeded, TooManyRequests
from aerodrome.limits.budget import BudgetLedger, BudgetScope, period_end, period_start
from aerodrome.limits.rate import RateLimiter


class Clock:
    def __init__(self, now: float = 6000.0) -> None:  # a window boundary (multiple of 60)
        self.now = now

    def __call__(self) -> float:
        return self.now


def req(
    ident: str = "k1", limit: int | None = 3, amount: float = 1
) -> list[tuple[str, str, int | None, float]]:
    return [("key", ident, limit, amount)]


# ------------------------------------------------------------------ rate limits


def test_rpm_admits_up_to_the_limit_then_refuses_with_retry_after() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    for _ in range(3):
        rl.check(req(), "requests")
    with pytest.raises(TooManyRequests) as info:
        rl.check(req(), "requests")
    assert info.value.code == "rate_limited"
    assert 1 <= info.value.retry_after <= 120
    assert info.value.headers["Retry-After"] == str(info.value.retry_after)
    rl.check(req("k2"), "requests")  # another key is not affected


def test_sliding_window_weighs_the_previous_minute() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    for _ in range(4):
        rl.check(req(limit=4), "requests")
    clock.now += 60  # next window: the previous 4 still count fully at its start
    with pytest.raises(TooManyRequests):
        rl.check(req(limit=4), "requests")
    clock.now += 30  # half of the previous window left: 4 * 0.5 = 2 in use
    rl.check(req(limit=4), "requests")
    rl.check(req(limit=4), "requests")
    with pytest.raises(TooManyRequests):
        rl.check(req(limit=4), "requests")
    clock.now += 120  # everything aged out
    for _ in range(4):
        rl.check(req(limit=4), "requests")


@pytest.mark.parametrize("offset", [0.0, 10.0, 59.0])
def test_waiting_retry_after_is_enough(offset: float) -> None:
    """A client that waits as long as Retry-After says must be admitted."""
    clock = Clock()
    rl = RateLimiter(clock=clock)
    clock.now += offset
    for _ in range(2):
        rl.check(req(limit=2), "requests")
    with pytest.raises(TooManyRequests) as info:
        rl.check(req(limit=2), "requests")
    clock.now += info.value.retry_after
    rl.check(req(limit=2), "requests")


def test_retry_after_is_not_too_generous_either() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    for _ in range(2):
        rl.check(req(limit=2), "requests")
    with pytest.raises(TooManyRequests) as info:
        rl.check(req(limit=2), "requests")
    clock.now += info.value.retry_after - 2
    with pytest.raises(TooManyRequests):
        rl.check(req(limit=2), "requests")


def test_tokens_per_minute_and_usage_added_afterwards() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    rl.check(req(limit=100, amount=60), "tokens")
    rl.add(req(limit=100, amount=30), "tokens")  # completion tokens, counted after the answer
    with pytest.raises(TooManyRequests) as info:
        rl.check(req(limit=100, amount=20), "tokens")
    assert "tokens" in info.value.message
    rl.check(req(limit=100, amount=10), "tokens")


def test_a_single_request_over_the_limit_passes_only_into_an_empty_window() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    rl.check(req(limit=50, amount=80), "tokens")
    with pytest.raises(TooManyRequests) as info:
        rl.check(req(limit=50, amount=80), "tokens")
    clock.now += info.value.retry_after
    rl.check(req(limit=50, amount=80), "tokens")


def test_a_refusal_on_one_scope_admits_nothing_on_the_others() -> None:
    rl = RateLimiter(clock=Clock())
    both = [("key", "k1", 10, 1.0), ("department", "hr", 1, 1.0)]
    rl.check(both, "requests")
    with pytest.raises(TooManyRequests) as info:
        rl.check(both, "requests")
    assert "department" in info.value.message
    for _ in range(9):  # the key's count did not move on the refusal
        rl.check([("key", "k1", 10, 1.0)], "requests")
    with pytest.raises(TooManyRequests):
        rl.check([("key", "k1", 10, 1.0)], "requests")


def test_no_limit_means_unlimited() -> None:
    rl = RateLimiter(clock=Clock())
    for _ in range(1000):
        rl.check(req(limit=None), "requests")


# ------------------------------------------------------------------ budgets


class Now:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scope(
    usd: float = 1.0, period: str = "day", soft: float = 0.8, ident: str = "k1", kind: str = "key"
) -> BudgetScope:
    return BudgetScope(kind, ident, Budget(usd=usd, period=period, soft_pct=soft))  # type: ignore[arg-type]


def test_reserve_counts_requests_in_flight() -> None:
    ledger = BudgetLedger(now=Now(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    held = [ledger.reserve([scope()], 0.3) for _ in range(3)]
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve([scope()], 0.3)  # 0.9 reserved + 0.3 > 1.0
    assert info.value.code == "budget_exceeded" and info.value.status == 429
    assert "daily" in info.value.message
    ledger.settle(held[0], 0.05)  # the real cost was small: room again
    ledger.reserve([scope()], 0.3)
    snap = {(s["scope"], s["id"]): s for s in ledger.snapshot()}[("key", "k1")]
    assert snap["spent"] == pytest.approx(0.05)
    assert snap["reserved"] == pytest.approx(0.9)


def test_settle_is_idempotent() -> None:
    ledger = BudgetLedger(now=Now(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    res = ledger.reserve([scope()], 0.5)
    ledger.settle(res, 0.2)
    ledger.settle(res, 0.2)
    snap = ledger.snapshot()[0]
    assert snap["spent"] == pytest.approx(0.2) and snap["reserved"] == 0


def test_refusal_on_one_scope_reserves_nothing_anywhere() -> None:
    ledger = BudgetLedger(now=Now(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    small = scope(usd=0.1, ident="hr", kind="department")
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve([scope(), small], 0.5)
    assert "department 'hr'" in info.value.message
    assert all(s["reserved"] == 0 for s in ledger.snapshot())


def test_retry_after_points_at_the_end_of_the_period() -> None:
    now = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
    ledger = BudgetLedger(now=Now(now))
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve([scope(usd=0.1)], 0.5)
    assert info.value.retry_after == 3600
    assert period_end("month", datetime(2026, 12, 31, 5, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_start("month", datetime(2026, 12, 31, 5, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_soft_threshold_warns_on_every_request_past_it_and_logs_one_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = BudgetLedger(now=Now(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    s = scope(usd=1.0, soft=0.5)
    first = ledger.reserve([s], 0.2)
    assert first.warnings == []
    ledger.settle(first, 0.2)
    second = ledger.reserve([s], 0.2)
    assert second.warnings == []  # 0.4 of 1.0
    ledger.settle(second, 0.2)
    with caplog.at_level(logging.WARNING, logger="aerodrome.budget"):
        third = ledger.reserve([s], 0.2)  # 0.6 of 1.0
        ledger.settle(third, 0.2)
        fourth = ledger.reserve([s], 0.1)
    assert third.warnings and "key k1 at 60% of its daily budget" in third.warnings[0]
    assert fourth.warnings
    assert ledger.soft_events == 1
    assert len([r for r in caplog.records if getattr(r, "event", None) == "budget.soft_threshold"]) == 1


def test_a_new_period_starts_from_zero() -> None:
    now = Now(datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    ledger = BudgetLedger(now=now)
    ledger.settle(ledger.reserve([scope(soft=0.5)], 0.9), 0.9)
    with pytest.raises(BudgetExceeded):
        ledger.reserve([scope(soft=0.5)], 0.2)
    now.now += timedelta(minutes=2)
    res = ledger.reserve([scope(soft=0.5)], 0.2)
    assert res.warnings == []
    assert ledger.snapshot()[0]["spent"] == 0
    assert ledger.snapshot()[0]["period_start"].startswith("2026-03-11")


def test_a_reservation_in_flight_across_the_period_change_is_released() -> None:
    now = Now(datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC))
    ledger = BudgetLedger(now=now)
    in_flight = ledger.reserve([scope()], 0.6)
    now.now += timedelta(seconds=2)  # midnight passes while the request runs
    other = ledger.reserve([scope()], 0.3)
    ledger.settle(in_flight, 0.01)
    ledger.settle(other, 0.01)
    snap = ledger.snapshot()[0]
    assert snap["reserved"] == 0  # nothing stays reserved for ever
    ledger.reserve([scope()], 0.95)  # the new day's budget is whole again (but what was just spent)


def test_total_period_never_rolls_over() -> None:
    now = Now(datetime(2026, 3, 10, tzinfo=UTC))
    ledger = BudgetLedger(now=now)
    ledger.settle(ledger.reserve([scope(period="total")], 0.9), 0.9)
    now.now += timedelta(days=400)
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve([scope(period="total")], 0.2)
    assert "total budget" in info.value.message


def test_load_spent_seeds_the_account() -> None:
    ledger = BudgetLedger(now=Now(datetime(2026, 3, 10, tzinfo=UTC)))
    ledger.load_spent("department", "hr", Budget(usd=1.0, period="month"), 0.95)
    with pytest.raises(BudgetExceeded):
        ledger.reserve([scope(usd=1.0, period="month", ident="hr", kind="department", soft=0.8)], 0.1)
    ledger.reserve([scope(usd=1.0, period="month", ident="hr", kind="department", soft=0.8)], 0.04)
