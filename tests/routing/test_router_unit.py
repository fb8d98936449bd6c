"""Unit tests of the circuit breaker and the router, with a fake clock, a seeded rng and fake providers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from aerodrome.catalog.catalog import ResolvedAlias
from aerodrome.config import AliasConfig, BreakerConfig, DeploymentConfig, RoutingConfig
from aerodrome.errors import ServiceUnavailable, UpstreamError, UpstreamRejected, UpstreamTimeout
from aerodrome.routing.breaker import CircuitBreakers
from aerodrome.routing.router import Attempts, Router


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dep(name: str, weight: float = 1.0) -> DeploymentConfig:
    return DeploymentConfig(name=name, provider="fake", model=f"{name}-model", weight=weight)


def resolved(*deps: DeploymentConfig, strategy: str = "fallback") -> ResolvedAlias:
    alias = AliasConfig(name="chat", deployments=[d.name for d in deps], strategy=strategy)  # type: ignore[arg-type]
    return ResolvedAlias(alias=alias, deployments=deps)


class FakeProvider:
    """Answers per deployment from a script: an exception to raise or "ok"; then "ok" forever."""

    kind = "fake"

    def __init__(self, script: dict[str, list[Any]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[str] = []

    async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(deployment.name)
        steps = self.script.get(deployment.name) or []
        step = steps.pop(0) if steps else "ok"
        if isinstance(step, BaseException):
            raise step
        return {"choices": [], "model": body["model"], "from": deployment.name}


def router(
    provider: FakeProvider, *, retries: int = 1, failures: int = 3, cooldown: float = 10.0, seed: int = 7
) -> Router:
    cfg = RoutingConfig(
        max_retries=retries,
        backoff_initial_s=0.0,
        backoff_max_s=0.0,
        breaker=BreakerConfig(failures=failures, cooldown_s=cooldown),
    )
    return Router(cfg, lambda: {"fake": provider}, rng=random.Random(seed))  # type: ignore[dict-item]


def boom(code: str = "upstream_500") -> UpstreamError:
    return UpstreamError("boom", code=code, upstream_status=500)


# ------------------------------------------------------------------ the breaker


def test_breaker_opens_after_n_failures_and_recovers_through_one_trial() -> None:
    clock = Clock()
    b = CircuitBreakers(BreakerConfig(failures=3, cooldown_s=30), clock=clock)
    for _ in range(2):
        b.failure("a")
        assert b.state("a") == "closed" and b.allow("a")
    b.failure("a")
    assert b.state("a") == "open"
    assert not b.allow("a") and not b.available("a")
    clock.now += 29.9
    assert not b.allow("a")
    clock.now += 0.2
    assert b.state("a") == "half_open"
    assert b.available("a") and b.available("a")  # looking takes nothing
    assert b.allow("a")  # the one trial
    assert not b.allow("a") and not b.available("a")  # no second trial while it runs
    b.success("a")
    assert b.state("a") == "closed" and b.allow("a") and b.allow("a")
    assert b.state("other") == "closed"


def test_breaker_trial_failure_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    b = CircuitBreakers(BreakerConfig(failures=1, cooldown_s=5), clock=clock)
    b.failure("a")
    clock.now += 5
    assert b.allow("a")
    b.failure("a")
    assert b.state("a") == "open"
    clock.now += 4.9
    assert not b.allow("a")
    clock.now += 0.2
    assert b.allow("a")


def test_breaker_release_frees_the_trial_slot() -> None:
    clock = Clock()
    b = CircuitBreakers(BreakerConfig(failures=1, cooldown_s=5), clock=clock)
    b.failure("a")
    clock.now += 6
    assert b.allow("a")
    b.release("a")  # e.g. the call was cancelled
    assert b.state("a") == "half_open"
    assert b.allow("a")


def test_breaker_success_resets_the_failure_count() -> None:
    b = CircuitBreakers(BreakerConfig(failures=2, cooldown_s=5), clock=Clock())
    b.failure("a")
    b.success("a")
    b.failure("a")
    assert b.state("a") == "closed"


# ------------------------------------------------------------------ order


def test_fallback_order_keeps_the_alias_order() -> None:
    r = router(FakeProvider())
    alias = resolved(dep("a"), dep("b"), dep("c"))
    for _ in range(3):
        assert [d.name for d in r.order(alias)] == ["a", "b", "c"]


def test_round_robin_rotates_the_first_deployment() -> None:
    r = router(FakeProvider())
    alias = resolved(dep("a"), dep("b"), dep("c"), strategy="round_robin")
    firsts = [r.order(alias)[0].name for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert sorted(d.name for d in r.order(alias)) == ["a", "b", "c"]  # the others stay as fallbacks


def test_weighted_draws_the_first_by_weight_with_a_seeded_rng() -> None:
    alias = resolved(dep("heavy", 3.0), dep("light", 1.0), strategy="weighted")
    r1, r2 = router(FakeProvider(), seed=42), router(FakeProvider(), seed=42)
    draws1 = [r1.order(alias)[0].name for _ in range(2000)]
    draws2 = [r2.order(alias)[0].name for _ in range(2000)]
    assert draws1 == draws2  # reproducible
    counts = Counter(draws1)
    assert 0.70 < counts["heavy"] / 2000 < 0.80
    assert all(len(r1.order(alias)) == 2 for _ in range(10))


def test_order_skips_open_deployments_and_refuses_when_all_are_open() -> None:
    r = router(FakeProvider(), failures=1)
    alias = resolved(dep("a"), dep("b"))
    r.breakers.failure("a")
    assert [d.name for d in r.order(alias)] == ["b"]
    r.breakers.failure("b")
    with pytest.raises(ServiceUnavailable) as info:
        r.order(alias)
    assert info.value.code == "circuit_open"


# ------------------------------------------------------------------ attempts


def test_retry_then_success_on_the_same_deployment() -> None:
    provider = FakeProvider({"a": [boom()]})
    attempts = Attempts()
    out = asyncio.run(router(provider).chat(resolved(dep("a"), dep("b")), {"model": "chat"}, attempts))
    assert out["from"] == "a" and out["model"] == "a-model"
    assert provider.calls == ["a", "a"]
    assert attempts.count == 2 and not attempts.fallback and attempts.deployment is not None
    assert attempts.errors == ["a: boom"]


def test_fallback_after_retries_are_used_up() -> None:
    provider = FakeProvider({"a": [boom(), boom()]})
    attempts = Attempts()
    out = asyncio.run(router(provider).chat(resolved(dep("a"), dep("b")), {"model": "chat"}, attempts))
    assert out["from"] == "b"
    assert provider.calls == ["a", "a", "b"]
    assert attempts.fallback and attempts.count == 3


def test_non_retryable_error_moves_on_at_once() -> None:
    provider = FakeProvider({"a": [UpstreamError("bad credentials", code="upstream_auth", retryable=False)]})
    out = asyncio.run(router(provider).chat(resolved(dep("a"), dep("b")), {"model": "chat"}, Attempts()))
    assert out["from"] == "b" and provider.calls == ["a", "b"]


def test_rejected_is_neither_retried_nor_sent_to_the_fallback() -> None:
    provider = FakeProvider({"a": [UpstreamRejected("bad request", upstream_status=400)]})
    attempts = Attempts()
    with pytest.raises(UpstreamRejected):
        asyncio.run(router(provider).chat(resolved(dep("a"), dep("b")), {"model": "chat"}, attempts))
    assert provider.calls == ["a"] and attempts.count == 1


def test_all_failing_raises_naming_every_cause_and_keeps_timeouts_as_timeouts() -> None:
    provider = FakeProvider({"a": [boom(), boom()], "b": [UpstreamTimeout("no answer within 2 s")] * 2})
    with pytest.raises(UpstreamTimeout) as info:
        asyncio.run(router(provider).chat(resolved(dep("a"), dep("b")), {"model": "chat"}, Attempts()))
    assert "4 attempt" in info.value.message
    assert "a: boom" in info.value.message and "b: no answer within 2 s" in info.value.message
    assert info.value.status == 504


def test_a_fallback_deployment_in_half_open_state_is_not_lost_when_the_first_answers() -> None:
    """Listing a half-open deployment as a fallback must not take its trial slot for good."""
    clock = Clock()
    provider = FakeProvider({"a": [boom()], "b": [boom()]})
    r = router(provider, retries=0, failures=1, cooldown=5)
    r.breakers = CircuitBreakers(BreakerConfig(failures=1, cooldown_s=5), clock=clock)
    alias = resolved(dep("a"), dep("b"))
    with pytest.raises(UpstreamError):
        asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))  # both fail: both open
    clock.now += 6  # both half-open
    assert asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))["from"] == "a"  # a's trial succeeds
    assert r.breakers.state("b") == "half_open" and r.breakers.available("b")
    provider.script["a"] = [boom()]
    out = asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))  # a fails again: b gets its trial
    assert out["from"] == "b"
    assert r.breakers.state("b") == "closed"


def test_a_rejected_trial_frees_the_slot() -> None:
    clock = Clock()
    provider = FakeProvider({"a": [boom(), UpstreamRejected("bad request", upstream_status=400)]})
    r = router(provider, retries=0, failures=1, cooldown=5)
    r.breakers = CircuitBreakers(BreakerConfig(failures=1, cooldown_s=5), clock=clock)
    alias = resolved(dep("a"))
    with pytest.raises(UpstreamError):
        asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))
    clock.now += 6
    with pytest.raises(UpstreamRejected):
        asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))
    assert asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))["from"] == "a"


def test_a_cancelled_trial_frees_the_slot() -> None:
    clock = Clock()

    class Slow(FakeProvider):
        async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
            if self.script.get("hang"):
                self.script["hang"] = []
                await asyncio.sleep(10)
            return await super().chat(deployment, body)

    provider = Slow({"a": [boom()]})
    r = router(provider, retries=0, failures=1, cooldown=5)
    r.breakers = CircuitBreakers(BreakerConfig(failures=1, cooldown_s=5), clock=clock)
    alias = resolved(dep("a"))
    with pytest.raises(UpstreamError):
        asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))
    clock.now += 6
    provider.script["hang"] = [True]

    async def cancelled_call() -> None:
        task = asyncio.ensure_future(r.chat(alias, {"model": "chat"}, Attempts()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_call())
    assert asyncio.run(r.chat(alias, {"model": "chat"}, Attempts()))["from"] == "a"
