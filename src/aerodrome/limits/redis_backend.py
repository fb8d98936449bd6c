"""Rate limits and budgets shared by every replica, on Redis (scaled mode).

One admission is one round trip: the ADMIT script checks every RPM/TPM window and every
budget of the request and, only if all pass, counts and reserves them, atomically. So a
limit holds for the sum of all replicas, and concurrent requests on different replicas
cannot overspend a budget by more than the reservations they hold (each is the request's
worst case). Settlements (real cost, completion tokens) are queued and sent in batches
off the request path.

Accounts are seeded from the run records by the first replica that finds one missing (a
new deployment, a new key, a Redis that lost its data), with a set-if-missing script, so
seeding happens once for all replicas, never twice.

When Redis is unreachable (docs/scaling.md): requests with a budget are refused with 503
``budget_store_unavailable`` (budgets fail closed); rate limits follow
``redis.rate_limits_when_down`` (``local``: each replica counts alone; ``open``; ``closed``:
503 ``rate_limit_store_unavailable``). The next call after ``redis.retry_s`` tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aerodrome.config import Budget, RedisConfig
from aerodrome.errors import BudgetExceeded, ServiceUnavailable, TooManyRequests
from aerodrome.limits.backend import Admission, LocalLimits, RateCheck
from aerodrome.limits.budget import BudgetScope, period_end, period_start
from aerodrome.limits.redis_scripts import ADMIT, SEED, SETTLE
from aerodrome.storage.redis_link import UNAVAILABLE, RedisLink

log = logging.getLogger("aerodrome.budget")
NANO = 1_000_000_000  # budgets are counted in integer nano-dollars in Redis
_ADJECTIVE = {"day": "daily", "month": "monthly", "total": "total"}
SETTLE_BATCH = 256
SETTLE_LINGER_S = 0.005  # one round trip carries the settlements of every call that ended meanwhile
MAX_PENDING = 100_000
SpentOf = Callable[[str, str, Budget], float]


def _nano(usd: float) -> int:
    return round(usd * NANO)


@dataclass(frozen=True, slots=True)
class _Held:
    member: str
    keys: tuple[str, ...]  # (budget hash, held set) per budget


class RedisLimits:
    seeds_itself = True

    def __init__(self, link: RedisLink, *, spent_of: SpentOf) -> None:
        self._link = link
        self._config: RedisConfig = link.config
        self._spent_of = spent_of
        client = link.client
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._seed = client.register_script(SEED)
        self._local = LocalLimits()  # rate limits while Redis is down, with rate_limits_when_down: local
        self._pending: deque[tuple[list[str], list[Any]]] = deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self.soft_events = 0
        self.dropped_settlements = 0

    # ------------------------------------------------------------------ admission

    async def admit(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        if not rates and not budgets:
            return Admission()
        if self._link.available:
            try:
                return await self._admit_shared(rates, budgets, amount)
            except UNAVAILABLE as exc:
                self._link.failed(exc, "admission")
        return self._admit_down(rates, budgets, amount)

    def _admit_down(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        retry = {"Retry-After": str(max(1, round(self._config.retry_s)))}
        if budgets:
            raise ServiceUnavailable(
                "budgets cannot be checked: the shared limits store (Redis) is unreachable, so no "
                "request with a budget is admitted until it is back; retry in a few seconds",
                code="budget_store_unavailable",
                headers=retry,
            )
        policy = self._config.rate_limits_when_down
        if policy == "closed":
            raise ServiceUnavailable(
                "rate limits cannot be checked: the shared limits store (Redis) is unreachable and "
                "redis.rate_limits_when_down is closed; retry in a few seconds",
                code="rate_limit_store_unavailable",
                headers=retry,
            )
        if policy == "local":
            return self._local.admit_now(rates, (), 0.0)
        return Admission()

    async def _admit_shared(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetScope], amount: float
    ) -> Admission:
        key = self._link.key
        held = _nano(amount)
        member = f"{os.urandom(8).hex()}|{held}"
        budget_keys: list[str] = []
        for b in budgets:
            budget_keys += [key("budget", b.kind, b.ident), key("held", b.kind, b.ident)]
        keys = [key("rate", r.scope, r.what, r.ident) for r in rates] + budget_keys
        now = datetime.now(UTC)
        args: list[Any] = [len(rates), len(budgets), held, member, int(self._config.reservation_ttl_s * 1000)]
        for r in rates:
            args += [r.limit, r.amount]
        for b in budgets:
            start = int(period_start(b.budget.period, now).timestamp())
            args += [_nano(b.budget.usd), start, b.budget.soft_pct, b.budget.period]
        for _ in range(4):
            out = await self._admit(keys=keys, args=args)
            self._link.succeeded()
            code = int(out[0])
            if code == 0:
                return Admission(
                    warnings=self._warnings(budgets, out[1:]), handle=_Held(member, tuple(budget_keys))
                )
            if code == 1:
                r = rates[int(out[1]) - 1]
                retry = float(out[2])
                raise TooManyRequests(
                    f"{r.what} limit of {r.limit} per minute reached for {r.scope} {r.ident!r} "
                    f"(all replicas); retry in {int(retry) + 1} s",
                    retry_after=retry,
                    code="rate_limited",
                )
            scope = budgets[int(out[1]) - 1]
            if code == 2:
                end = period_end(scope.budget.period, now)
                raise BudgetExceeded(
                    f"the {_ADJECTIVE[scope.budget.period]} budget of {scope.kind} {scope.ident!r} "
                    f"(${scope.budget.usd:g}) is used up: ${int(out[2]) / NANO:.4f} spent, "
                    f"${int(out[3]) / NANO:.4f} reserved by requests in flight, "
                    f"this request may cost up to ${amount:.4f}",
                    retry_after=(end - now).total_seconds() if end else 86400.0,
                )
            await self._seed_account(scope, now)
        raise ServiceUnavailable(
            "the budget account could not be started; retry", code="budget_store_unavailable"
        )

    def _warnings(self, budgets: Sequence[BudgetScope], out: list[Any]) -> list[str]:
        warnings = []
        for j, scope in enumerate(budgets):
            used, newly = float(out[2 * j]), int(out[2 * j + 1])
            if used < scope.budget.soft_pct:
                continue
            warnings.append(
                f"{scope.kind} {scope.ident} at {used:.0%} of its {_ADJECTIVE[scope.budget.period]} budget"
            )
            if newly:
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
        return warnings

    async def _seed_account(self, scope: BudgetScope, now: datetime) -> None:
        """Start a missing account from the run records (set only if still missing)."""
        try:
            spent = await asyncio.to_thread(self._spent_of, scope.kind, scope.ident, scope.budget)
        except Exception as exc:  # boundary: without the spend so far the budget cannot be checked
            log.exception(
                "could not read the spend of a budget", extra={"scope": scope.kind, "id": scope.ident}
            )
            raise ServiceUnavailable(
                f"the budget of {scope.kind} {scope.ident!r} cannot be checked: its spend so far "
                "cannot be read from the database; retry in a few seconds",
                code="budget_store_unavailable",
                headers={"Retry-After": "2"},
            ) from exc
        start = int(period_start(scope.budget.period, now).timestamp())
        seeded = await self._seed(
            keys=[self._link.key("budget", scope.kind, scope.ident)], args=[start, _nano(spent)]
        )
        if seeded:
            log.info(
                "budget account seeded from run records",
                extra={"event": "budget.seeded", "scope": scope.kind, "id": scope.ident, "spent": spent},
            )

    # ------------------------------------------------------------------ settlement

    def settle(self, admission: Admission | None, cost: float, usage: Sequence[RateCheck]) -> None:
        held: _Held | None = None
        if admission is not None and not admission.settled:
            admission.settled = True
            if isinstance(admission.handle, _Held):
                held = admission.handle
        if held is None and not usage:
            return
        budget_keys = list(held.keys) if held else []
        keys = budget_keys + [self._link.key("rate", u.scope, u.what, u.ident) for u in usage]
        args: list[Any] = [len(budget_keys) // 2, len(usage), held.member if held else "", _nano(cost)]
        args += [u.amount for u in usage]
        self._enqueue_soon((keys, args))

    @staticmethod
    def held_of(admission: Admission | None) -> list[str]:
        """What a survivor needs to release this admission's reservation: [member, budget keys...]
        (empty when nothing was reserved)."""
        if admission is None or not isinstance(admission.handle, _Held):
            return []
        return [admission.handle.member, *admission.handle.keys]

    def release(self, held: Sequence[str]) -> None:
        """Release a reservation taken by another (dead) replica, costing nothing; a reservation
        already settled or expired is left alone (SETTLE removes only a member still held)."""
        if len(held) < 3:
            return
        member, keys = held[0], list(held[1:])
        self._enqueue_soon((keys, [len(keys) // 2, 0, member, 0]))

    def _enqueue_soon(self, item: tuple[list[str], list[Any]]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop or self._loop is None:
            self._enqueue(item)
        else:
            self._loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: tuple[list[str], list[Any]]) -> None:
        if len(self._pending) >= MAX_PENDING:  # Redis down for long: keep the newest, say so
            self._pending.popleft()
            self.dropped_settlements += 1
            if self.dropped_settlements % 1000 == 1:
                log.error(
                    "budget settlements dropped while Redis is down",
                    extra={"dropped": self.dropped_settlements},
                )
        self._pending.append(item)
        self._wake.set()

    async def _drain(self) -> None:
        # Stopped by a flag, not by cancellation: redis-py may turn a cancellation into a
        # connection error, which this loop would survive.
        while not self._closing:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(SETTLE_LINGER_S)  # gather the settlements of concurrent calls
            self._wake.clear()
            while self._pending and not self._closing:
                if not self._link.available:
                    await asyncio.sleep(self._config.retry_s)
                    continue
                try:
                    await self._send_batch()
                except Exception:  # boundary: the drainer must outlive any one bad batch
                    log.exception("budget settlements could not be sent; retrying")
                    await asyncio.sleep(self._config.retry_s)

    async def _send_batch(self) -> bool:
        batch = [self._pending.popleft() for _ in range(min(SETTLE_BATCH, len(self._pending)))]
        try:
            async with self._link.client.pipeline(transaction=False) as pipe:
                for keys, args in batch:
                    await self._settle(keys=keys, args=args, client=pipe)
                await pipe.execute()
        except UNAVAILABLE as exc:
            self._link.failed(exc, "settlement")
            self._pending.extendleft(reversed(batch))  # kept in order, sent when Redis is back
            return False
        self._link.succeeded()
        return True

    @property
    def pending_settlements(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ the rest of the contract

    def load_spent(self, kind: str, ident: str, budget: Budget, spent: float) -> None:
        return None  # accounts seed themselves from the run records, once for every replica

    async def snapshot(self) -> list[dict[str, object]]:
        try:
            return await self._snapshot()
        except UNAVAILABLE as exc:
            self._link.failed(exc, "budget snapshot")
            raise ServiceUnavailable(
                "budgets cannot be read: the shared limits store (Redis) is unreachable; retry shortly",
                code="budget_store_unavailable",
                headers={"Retry-After": "2"},
            ) from exc

    async def _snapshot(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        prefix = self._link.key("budget", "")
        async for name in self._link.client.scan_iter(match=prefix.replace("[", "\\[") + "*", count=500):
            h = await self._link.client.hgetall(name)
            if "usd" not in h:
                continue  # seeded, not used yet: its limit is known at the first admission
            kind, _, ident = name[len(prefix) :].partition(":")
            out.append(
                {
                    "scope": kind,
                    "id": ident,
                    "usd": int(h["usd"]) / NANO,
                    "period": h.get("period", "month"),
                    "spent": round(int(h.get("spent", 0)) / NANO, 6),
                    "reserved": round(int(h.get("reserved", 0)) / NANO, 6),
                    "period_start": datetime.fromtimestamp(int(h["start"]), UTC).isoformat(),
                }
            )
        return sorted(out, key=lambda b: (str(b["scope"]), str(b["id"])))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._drainer = asyncio.create_task(self._drain())

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is pending (for at most ``timeout_s``), then stop."""
        self._closing = True
        self._wake.set()
        if self._drainer is not None:
            _, running = await asyncio.wait({self._drainer}, timeout=timeout_s)
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._pending and asyncio.get_running_loop().time() < deadline:
            if not await self._send_batch():
                await asyncio.sleep(0.2)
        if self._pending:
            log.error(
                "budget settlements lost at shutdown: Redis unreachable",
                extra={"pending": len(self._pending)},
            )
