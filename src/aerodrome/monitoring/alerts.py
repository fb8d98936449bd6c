"""One alert evaluation: every use case's rules, every budget, then open / resolve / re-notify.

Runs in every replica every ``alerts.evaluate_every_s`` (aerodrome.runtime); replicas running it
at the same time are safe (see aerodrome.monitoring.alert_store). Messages are queued here and
sent by aerodrome.monitoring.alert_delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine

from aerodrome.config import AlertsConfig, DepartmentConfig
from aerodrome.monitoring import alert_store, budget_burn
from aerodrome.monitoring.alert_evaluator import Observation, evaluate_usecase
from aerodrome.usecases.spec import UseCaseSpec

log = logging.getLogger("aerodrome.alerts")


def evaluate(
    engine: Engine,
    config: AlertsConfig,
    specs: Sequence[UseCaseSpec],
    departments: Mapping[str, DepartmentConfig],
    now: datetime,
) -> alert_store.Changes:
    observations: list[Observation] = []
    complete = True
    for spec in specs:
        try:
            observations += evaluate_usecase(engine, spec, config.rules, now)
        except Exception:  # boundary: one use case's failure must not silence the others' alerts
            complete = False
            log.exception("alert evaluation failed for a use case", extra={"usecase": spec.id})
    try:
        observations += budget_burn.evaluate(engine, departments, config.budget_burn, config.rules, now)
    except Exception:  # boundary: as above
        complete = False
        log.exception("budget-burn evaluation failed")
    webhooks = [w.name for w in config.webhooks]
    changes = alert_store.apply(
        engine,
        observations,
        now=now,
        renotify_after_s=config.renotify_after_s,
        webhooks=webhooks,
        console_url=config.console_url,
    )
    if complete:  # only a full evaluation knows which rules are gone
        known = {o.open_key for o in observations}
        changes.resolved += alert_store.retire_missing(engine, known, now=now, webhooks=webhooks)
    return changes
