"""The contract every limits backend keeps, and the in-process backend (embedded mode).

Admission is one call: every rate window (RPM, TPM) and every budget that applies to a
request is checked, and on success counted and reserved, together. The in-process
backend below does it with :class:`RateLimiter` and :class:`BudgetLedger`; the Redis
backend (limits/redis_backend.py) does it in one atomic script, so the same limits and
budgets hold across replicas. Settling (the real cost, the completion tokens) never
waits: it must not slow the answer down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aerodrome.config import Budget
from aerodrome.limits.budget import BudgetLedger, BudgetScope, Reservation
from aerodrome.limits.rate import RateLimiter


@dataclass(frozen=True, slots=True)
class RateCheck:
    """``amount`` of ``what`` (requests or tokens) per minute for one scope, against ``limit``."""

    scope: str  # key | department
    ident: str
    what: str  # requests | tokens
    limit: int
    amount: float


@dataclass(slots=True)
class Admission:
    """What admission holds for a request until it settles: budget warnings, the backend's handle."""

    warnings: list[str] = field(default_factory=list)
    handle: object = None
    settled: bool = False


class LimitsBackend(Protocol):
    """Rate limits and budgets: in process (one replica) or shared (Redis, every replica)."""

    # True when the backend seeds budget accounts from run records by itself (Redis: once, for
    # every replica); False when the runtime must call load_spent at start (in process).
    seeds_itself: bool

    async def admit(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        """Check and count every rate, reserve ``amount`` on every budget; raises 429 (or 503 when
        the shared store is down and the policy refuses) and then counts nothing."""
        ...

    def settle(self, admission: Admission | None, cost: float, usage: Sequence[RateCheck]) -> None:
        """Release the reservation for the real ``cost``, count ``usage`` (completion tokens); never waits."""
        ...

    def load_spent(self, kind: str, ident: str, budget: Budget, spent: float) -> None:
        """Start an account from what the run records say was spent this period."""
        ...

    async def snapshot(self) -> list[dict[str, object]]:
        """Every budget account: scope, id, usd, period, spent, reserved, period_start."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Finish pending settlements (bounded in time)."""
        ...


class LocalLimits:
    """Everything in this process: exact for one replica, per replica with several."""

    seeds_itself = False

    def __init__(self, limiter: RateLimiter | None = None, ledger: BudgetLedger | None = None) -> None:
        self.limiter = limiter or RateLimiter()
        self.ledger = ledger or BudgetLedger()

    def admit_now(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        for what in ("requests", "tokens"):
            checks = [(r.scope, r.ident, r.limit, r.amount) for r in rates if r.what == what]
            if checks:
                self.limiter.check(checks, what)
        if not budgets:
            return Admission()
        res = self.ledger.reserve(list(budgets), amount)
        return Admission(warnings=res.warnings, handle=res)

    async def admit(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        return self.admit_now(rates, budgets, amount)

    def settle(self, admission: Admission | None, cost: float, usage: Sequence[RateCheck]) -> None:
        if admission is not None and not admission.settled:
            admission.settled = True
            if isinstance(admission.handle, Reservation):
                self.ledger.settle(admission.handle, cost)
        for what in ("requests", "tokens"):
            adds = [(u.scope, u.ident, u.limit, u.amount) for u in usage if u.what == what]
            if adds:
                self.limiter.add(adds, what)

    def load_spent(self, kind: str, ident: str, budget: Budget, spent: float) -> None:
        self.ledger.load_spent(kind, ident, budget, spent)

    async def snapshot(self) -> list[dict[str, object]]:
        return self.ledger.snapshot()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
