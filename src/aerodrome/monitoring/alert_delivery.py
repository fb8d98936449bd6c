"""Delivering queued alert messages with retries and exponential backoff; the outcome is recorded.

Every message is a row of ``alert_deliveries`` (pending → sent, or failed after
``delivery.max_attempts``). A replica claims a due message with a conditional update before
sending it, so several replicas never post the same message twice at the same time; a claim
expires after ``CLAIM_S`` (a replica that died mid-delivery leaves it to the others).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select

from aerodrome.config import DeliveryConfig, WebhookConfig
from aerodrome.monitoring.webhook import WebhookFailed
from aerodrome.storage.tables import alert_deliveries

log = logging.getLogger("aerodrome.alerts")
CLAIM_S = 120.0
BATCH = 50

Send = Callable[[WebhookConfig, dict[str, Any]], Awaitable[None]]
RunSync = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class Claimed:
    id: str
    webhook: str
    payload: dict[str, Any]
    attempts: int


def claim_due(engine: Engine, now: datetime) -> list[Claimed]:
    d = alert_deliveries
    claimed: list[Claimed] = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(d.c.id, d.c.webhook, d.c.payload, d.c.attempts)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
            )
            .order_by(d.c.next_attempt_at)
            .limit(BATCH)
        ).all()
    for row in rows:
        with engine.begin() as conn:
            got = conn.execute(
                d.update()
                .where(
                    d.c.id == row.id,
                    d.c.status == "pending",
                    or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_S))
            ).rowcount
        if got == 1:
            claimed.append(Claimed(row.id, row.webhook, row.payload, row.attempts))
    return claimed


def backoff_s(policy: DeliveryConfig, attempts: int) -> float:
    """Wait after the ``attempts``-th failed attempt: initial, 2x, 4x, ... capped at backoff_max_s."""
    return float(min(policy.backoff_initial_s * 2 ** max(attempts - 1, 0), policy.backoff_max_s))


def record_outcome(
    engine: Engine,
    item: Claimed,
    error: str | None,
    policy: DeliveryConfig,
    now: datetime,
    final: bool = False,
) -> str:
    """``final``: no point retrying (the webhook is not configured any more)."""
    attempts = item.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
    if error is None:
        values.update(status="sent", delivered_at=now, last_error=None)
    elif final or attempts >= policy.max_attempts:
        values.update(status="failed", last_error=error[:500])
    else:
        values.update(
            last_error=error[:500], next_attempt_at=now + timedelta(seconds=backoff_s(policy, attempts))
        )
    with engine.begin() as conn:
        conn.execute(alert_deliveries.update().where(alert_deliveries.c.id == item.id).values(**values))
    return str(values.get("status", "pending"))


async def deliver_due(
    engine: Engine,
    *,
    send: Send,
    webhooks: Mapping[str, WebhookConfig],
    policy: DeliveryConfig,
    now: Callable[[], datetime],
    run_sync: RunSync,
) -> dict[str, int]:
    """Send every due message once; ``run_sync`` runs the database calls (e.g. asyncio.to_thread)."""
    counts = {"sent": 0, "pending": 0, "failed": 0}
    for item in await run_sync(claim_due, engine, now()):
        hook = webhooks.get(item.webhook)
        error: str | None = None
        if hook is None:
            error = f"webhook {item.webhook!r} is not configured any more"
        else:
            try:
                await send(hook, item.payload)
            except WebhookFailed as exc:
                error = str(exc)
        status = await run_sync(record_outcome, engine, item, error, policy, now(), hook is None)
        counts[status] += 1
        if status == "failed":
            log.error(
                "alert message not delivered",
                extra={
                    "event": "alert.delivery_failed",
                    "delivery": item.id,
                    "webhook": item.webhook,
                    "error": error,
                },
            )
        elif error is not None:
            log.warning(
                "alert message delivery failed; will retry", extra={"delivery": item.id, "error": error}
            )
    return counts
