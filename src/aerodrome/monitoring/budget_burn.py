"""Budget burn: every department's and key's spend against its budget, as alert observations.

Two metrics per budget: ``budget_spent_pct`` (spend so far this period / the budget) and
``budget_projected_pct`` (the spend extrapolated linearly to the period's end / the budget,
once ``min_elapsed`` of the period has passed; none for ``total`` budgets). Spend is read from
the run records, as the budget ledger is seeded at start, so every replica sees the same figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from aerodrome.config import Budget, BudgetBurnConfig, DepartmentConfig, Period
from aerodrome.limits.budget import period_end, period_start
from aerodrome.monitoring.alert_evaluator import Observation, summary
from aerodrome.monitoring.alert_rules import AlertRule
from aerodrome.monitoring.runs import spent_since
from aerodrome.storage.tables import api_keys


@dataclass(frozen=True, slots=True)
class Account:
    kind: str  # department | key
    ident: str
    department: str
    label: str
    budget: Budget


def builtin_rules(config: BudgetBurnConfig) -> list[AlertRule]:
    if not config.enabled:
        return []
    return [
        AlertRule(
            metric="budget_projected_pct",
            above=config.projected_above,
            min_samples=0,
            name="budget-projected",
        ),
        AlertRule(
            metric="budget_spent_pct",
            above=config.spent_above,
            min_samples=0,
            severity="critical",
            name="budget-spent",
        ),
    ]


def accounts(engine: Engine, departments: Mapping[str, DepartmentConfig]) -> list[Account]:
    out = [
        Account("department", d.id, d.id, f"department {d.id}", d.budget)
        for d in departments.values()
        if d.budget is not None
    ]
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                api_keys.c.id,
                api_keys.c.name,
                api_keys.c.department_id,
                api_keys.c.budget_usd,
                api_keys.c.budget_period,
                api_keys.c.budget_soft_pct,
            ).where(api_keys.c.budget_usd.is_not(None), api_keys.c.revoked_at.is_(None))
        ).all()
    for key_id, name, dept, usd, period, soft in rows:
        budget = Budget(usd=usd, period=period or "month", soft_pct=soft or 0.8)
        out.append(Account("key", key_id, dept, f"key {name or key_id} ({dept})", budget))
    return out


def elapsed_share(period: Period, now: datetime) -> float | None:
    end = period_end(period, now)
    if end is None:
        return None
    start = period_start(period, now)
    return (now - start).total_seconds() / (end - start).total_seconds()


def evaluate(
    engine: Engine,
    departments: Mapping[str, DepartmentConfig],
    config: BudgetBurnConfig,
    platform_rules: list[AlertRule],
    now: datetime,
) -> list[Observation]:
    rules = builtin_rules(config) + [r for r in platform_rules if r.source == "budget"]
    if not rules:
        return []
    spent: dict[tuple[str, Period], dict[str, float]] = {}
    out: list[Observation] = []
    for acct in accounts(engine, departments):
        column = "department_id" if acct.kind == "department" else "key_id"
        cache_key = (column, acct.budget.period)
        if cache_key not in spent:
            spent[cache_key] = spent_since(engine, column, period_start(acct.budget.period, now))
        used = spent[cache_key].get(acct.ident, 0.0)
        share = elapsed_share(acct.budget.period, now)
        values = {
            "budget_spent_pct": used / acct.budget.usd,
            "budget_projected_pct": (
                used / share / acct.budget.usd if share is not None and share >= config.min_elapsed else None
            ),
        }
        for rule in rules:
            value = values[rule.metric]
            details = {
                "spent_usd": round(used, 6),
                "budget_usd": acct.budget.usd,
                "period": acct.budget.period,
                "period_elapsed": None if share is None else round(share, 4),
            }
            out.append(
                Observation(
                    rule=rule,
                    origin="budget",
                    scope_kind=acct.kind,
                    scope_id=acct.ident,
                    departments=[acct.department],
                    value=value,
                    samples=0,
                    breached=None if value is None else rule.breached(value),
                    summary=summary(rule, value, acct.label, 0).replace(f" over {rule.window}, 0 samples", "")
                    + f": ${used:.2f} of ${acct.budget.usd:g} ({acct.budget.period})",
                    details=details,
                )
            )
    return out
