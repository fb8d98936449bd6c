"""USD budgets per department, key and alias, with reservation at admission.

Admission reserves the worst-case cost of a request (its prompt plus its maximum
completion at the highest price of the alias) on every budget that applies; the
response settles the reservation with the real cost. A request is refused when
``spent + reserved + estimate`` would pass a hard limit, so concurrent requests
cannot overspend. Crossing the soft threshold adds a warning (header and event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aerodrome.config import Budget, Period
from aerodrome.errors import BudgetExceeded

log = logging.getLogger("aerodrome.budget")
_ADJECTIVE = {"day": "daily", "month": "monthly", "total": "total"}


def period_start(period: Period, now: datetime) -> datetime:
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return datetime(1970, 1, 1, tzinfo=UTC)


def period_end(period: Period, now: datetime) -> datetime | None:
    start = period_start(period, now)
    if period == "day":
        return start.fromtimestamp(start.timestamp() + 86400, UTC)
    if period == "month":
        return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return None


@dataclass(slots=True)
class _Account:
    budget: Budget
    start: datetime
    spent: float = 0.0
    reserved: float = 0.0
    warned: bool = False


@dataclass(frozen=True, slots=True)
class BudgetScope:
    kind: str  # department | key | alias
    ident: str
    budget: Budget


@dataclass(slots=True)
class Reservation:
    amount: float
    accounts: list[_Account] = field(default_factory=list)
    settled: bool = False
    warnings: list[str] = field(default_factory=list)


class BudgetLedger:
    def __init__(self, *, now: object = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._accounts: dict[tuple[str, str], _Account] = {}
        self.soft_events = 0

    def _account(self, scope: BudgetScope, now: datetime) -> _Account:
        key = (scope.kind, scope.ident)
        acct = self._accounts.get(key)
        start = period_start(scope.budget.period, now)
        if acct is None:
            acct = self._accounts[key] = _Account(budget=scope.budget, start=start)
            return acct
        # Change the account in place: reservations in flight hold it and settle on it.
        if acct.start != start:  # a new period: spending starts again from zero
            acct.start = start
            acct.spent = 0.0
            acct.warned = False
        if acct.budget != scope.budget:
            acct.budget = scope.budget
            acct.warned = False
        return acct

    def load_spent(self, kind: str, ident: str, budget: Budget, spent: float) -> None:
        """Seed an account with what the run records say was spent this period."""
        now: datetime = self._now()  # type: ignore[operator]
        self._account(BudgetScope(kind, ident, budget), now).spent = spent

    def reserve(self, scopes: list[BudgetScope], amount: float) -> Reservation:
        now: datetime = self._now()  # type: ignore[operator]
        accounts = [self._account(s, now) for s in scopes]
        for scope, acct in zip(scopes, accounts, strict=True):
            if acct.spent + acct.reserved + amount > acct.budget.usd:
                end = period_end(scope.budget.period, now)
                retry = (end - now).total_seconds() if end else 86400.0
                raise BudgetExceeded(
                    f"the {_ADJECTIVE[scope.budget.period]} budget of {scope.kind} {scope.ident!r} "
                    f"(${scope.budget.usd:g}) "
                    f"is used up: ${acct.spent:.4f} spent, ${acct.reserved:.4f} reserved by requests in flight, "
                    f"this request may cost up to ${amount:.4f}",
                    retry_after=retry,
                )
        res = Reservation(amount=amount, accounts=accounts)
        for scope, acct in zip(scopes, accounts, strict=True):
            acct.reserved += amount
            used = (acct.spent + acct.reserved) / acct.budget.usd
            if used >= acct.budget.soft_pct:
                res.warnings.append(
                    f"{scope.kind} {scope.ident} at {used:.0%} of its {_ADJECTIVE[scope.budget.period]} budget"
                )
                if not acct.warned:
                    acct.warned = True
                    self.soft_events += 1
                    log.warning(
                        "budget soft threshold crossed",
                        extra={
                            "event": "budget.soft_threshold",
                            "scope": scope.kind,
                            "id": scope.ident,
                            "used_pct": round(used * 100, 1),
                            "budget_usd": scope.budget.usd,
                        },
                    )
        return res

    def settle(self, res: Reservation, cost: float) -> None:
        if res.settled:
            return
        res.settled = True
        for acct in res.accounts:
            acct.reserved = max(0.0, acct.reserved - res.amount)
            acct.spent += cost

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "scope": k[0],
                "id": k[1],
                "usd": a.budget.usd,
                "period": a.budget.period,
                "spent": round(a.spent, 6),
                "reserved": round(a.reserved, 6),
                "period_start": a.start.isoformat(),
            }
            for k, a in sorted(self._accounts.items())
        ]
