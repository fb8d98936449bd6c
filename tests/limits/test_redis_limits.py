"""The Redis limits backend on a real Redis: two backends stand for two replicas.

Budgets and rate windows are shared and exact under concurrency; accounts are seeded from
the run records once; a reservation whose replica died is released after its TTL; while
Redis is down budgets refuse (503) and rate limits follow the configured policy; when it is
back, admission uses it again without a restart, and settlements kept meanwhile arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from aerodrome.config import Budget, RedisConfig
from aerodrome.errors import BudgetExceeded, ServiceUnavailable, TooManyRequests
from aerodrome.limits.backend import RateCheck
from aerodrome.limits.budget import BudgetScope
from aerodrome.limits.redis_backend import RedisLimits
from aerodrome.storage.redis_link import RedisLink
from tests.integration.services import (
    SHARED_REDIS,
    delete_prefix,
    private_redis,
    shared_redis_available,
    unique_prefix,
)

pytestmark = pytest.mark.skipif(not shared_redis_available(), reason="Redis is not running at 127.0.0.1:6379")


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_prefix(SHARED_REDIS, name)


class Replicas:
    """N backends on one Redis and one key prefix, with a spend source that counts its calls."""

    def __init__(self, url: str, prefix: str, n: int = 2, spent: float = 0.0, **config: Any) -> None:
        # tests of atomicity under concurrency, not of outages: a command slowed by a loaded machine
        # must not count as Redis down (the outage tests set their own timeout or stop Redis)
        config.setdefault("timeout_s", 2.0)
        self.config = RedisConfig(url=url, key_prefix=prefix, **config)
        self.spent = spent
        self.seed_calls = 0
        self.links = [RedisLink(self.config) for _ in range(n)]
        self.backends = [RedisLimits(link, spent_of=self._spent_of) for link in self.links]

    def _spent_of(self, kind: str, ident: str, budget: Budget) -> float:
        self.seed_calls += 1
        return self.spent

    async def __aenter__(self) -> Replicas:
        for b in self.backends:
            await b.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for b, link in zip(self.backends, self.links, strict=True):
            await b.close(timeout_s=1)
            await link.close()


def budget(usd: float = 1.0, ident: str = "k1", period: str = "day") -> BudgetScope:
    return BudgetScope("key", ident, Budget(usd=usd, period=period))  # type: ignore[arg-type]


async def _admit_all(
    rs: Replicas, n: int, rates: list[RateCheck], budgets: list[BudgetScope], amount: float
) -> list[Any]:
    calls = [rs.backends[i % len(rs.backends)].admit(rates, budgets, amount) for i in range(n)]
    return list(await asyncio.gather(*calls, return_exceptions=True))


def test_concurrent_reservations_on_two_replicas_never_pass_the_budget(prefix: str) -> None:
    async def scenario() -> None:
        async with Replicas(SHARED_REDIS, prefix) as rs:
            results = await _admit_all(rs, 60, [], [budget(usd=1.0)], 0.3)
            admitted = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, BudgetExceeded)]
            assert len(admitted) == 3 and len(refused) == 57  # 3 x $0.3 fit in $1, a 4th does not
            assert "reserved by requests in flight" in refused[0].message
            assert rs.seed_calls >= 1
            for i, adm in enumerate(admitted):
                rs.backends[i % 2].settle(adm, 0.1, [])
            await asyncio.sleep(0.2)  # settlements leave off the request path
            (snap,) = await rs.backends[1].snapshot()
            assert snap["spent"] == pytest.approx(0.3) and snap["reserved"] == 0
            # the real cost was small: the room is back, on either replica
            assert not isinstance(await rs.backends[1].admit([], [budget(usd=1.0)], 0.6), BaseException)

    asyncio.run(scenario())


def test_rpm_holds_for_the_sum_of_the_replicas(prefix: str) -> None:
    async def scenario() -> None:
        async with Replicas(SHARED_REDIS, prefix, n=3) as rs:
            rate = [RateCheck("key", "k1", "requests", 10, 1)]
            results = await _admit_all(rs, 30, rate, [], 0.0)
            refused = [r for r in results if isinstance(r, TooManyRequests)]
            assert len(results) - len(refused) == 10
            assert refused[0].code == "rate_limited" and refused[0].retry_after >= 1
            assert "all replicas" in refused[0].message

    asyncio.run(scenario())


def test_an_account_is_seeded_from_the_run_records_once_for_all_replicas(prefix: str) -> None:
    async def scenario() -> None:
        async with Replicas(SHARED_REDIS, prefix, spent=0.8) as rs:
            results = await _admit_all(rs, 20, [], [budget(usd=1.0)], 0.05)
            admitted = [r for r in results if not isinstance(r, BaseException)]
            assert len(admitted) == 4  # $0.8 already spent: four reservations of $0.05 fit
            for adm in admitted:
                rs.backends[0].settle(adm, 0.05, [])
            await asyncio.sleep(0.2)
            (snap,) = await rs.backends[0].snapshot()
            assert snap["spent"] == pytest.approx(1.0)  # 0.8 seeded (once) + 4 x 0.05, never 0.8 twice
            with pytest.raises(BudgetExceeded):
                await rs.backends[1].admit([], [budget(usd=1.0)], 0.01)

    asyncio.run(scenario())


def test_a_reservation_of_a_dead_replica_is_released_after_its_ttl(prefix: str) -> None:
    async def scenario() -> None:
        async with Replicas(SHARED_REDIS, prefix) as rs:
            await rs.backends[0].admit([], [budget(usd=1.0)], 0.9)  # replica 0 "dies": never settles
            with pytest.raises(BudgetExceeded):
                await rs.backends[1].admit([], [budget(usd=1.0)], 0.2)
            # Let the hold expire (its score is its expiry in ms) instead of waiting the TTL out.
            with redis.Redis.from_url(SHARED_REDIS) as r:
                held = "{" + prefix + "}:held:key:k1"
                (member,) = r.zrange(held, 0, -1)
                r.zadd(held, {member: 1})
            await rs.backends[1].admit([], [budget(usd=1.0)], 0.2)
            (snap,) = await rs.backends[1].snapshot()
            assert snap["reserved"] == pytest.approx(0.2)

    asyncio.run(scenario())


def test_redis_down_budgets_fail_closed_rate_limits_follow_the_policy_then_recover() -> None:
    async def scenario() -> None:
        with private_redis() as server:
            rate = [RateCheck("department", "hr", "requests", 2, 1)]
            async with (
                Replicas(server.url, "down", n=1, retry_s=0.2) as local,
                Replicas(server.url, "down", n=1, retry_s=0.2, rate_limits_when_down="open") as open_,
                Replicas(server.url, "down", n=1, retry_s=0.2, rate_limits_when_down="closed") as closed,
            ):
                (lb,), (ob,), (cb,) = local.backends, open_.backends, closed.backends
                held = await lb.admit([], [budget(usd=1.0)], 0.1)
                server.stop()
                with pytest.raises(ServiceUnavailable) as info:
                    await lb.admit([], [budget(usd=1.0)], 0.1)
                assert info.value.status == 503 and info.value.code == "budget_store_unavailable"
                assert "Redis" in info.value.message and info.value.headers["Retry-After"]
                lb.settle(held, 0.05, [])  # kept until Redis is back
                # local: each replica enforces the limit alone
                assert [isinstance(r, TooManyRequests) for r in await _admit_all(local, 3, rate, [], 0)] == [
                    False,
                    False,
                    True,
                ]
                assert not any(isinstance(r, BaseException) for r in await _admit_all(open_, 5, rate, [], 0))
                with pytest.raises(ServiceUnavailable) as info:
                    await cb.admit(rate, [], 0)
                assert info.value.code == "rate_limit_store_unavailable"
                server.start()  # same port, empty: Redis lost everything
                await asyncio.sleep(0.3)  # past retry_s, the next call tries Redis again
                await lb.admit([], [budget(usd=1.0)], 0.1)
                assert local.seed_calls == 2  # the lost account was seeded again from the run records
                await ob.admit(rate, [], 0)
                await asyncio.sleep(0.5)
                assert lb.pending_settlements == 0

    asyncio.run(scenario())
