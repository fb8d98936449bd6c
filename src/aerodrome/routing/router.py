"""Send a request to an alias: pick deployments, retry, fall back, trip breakers.

Order of deployments: ``fallback`` keeps the alias order; ``round_robin`` rotates
the starting deployment per request; ``weighted`` draws the first by weight. Each
deployment gets ``1 + max_retries`` attempts on retryable errors (exponential
backoff with jitter), then the next one is tried. Caller errors (``UpstreamRejected``)
are never retried. For streams, retries and fallbacks happen only before the first
chunk reaches the client.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aerodrome.catalog.catalog import ResolvedAlias
from aerodrome.config import DeploymentConfig, RoutingConfig
from aerodrome.errors import ServiceUnavailable, UpstreamError, UpstreamRejected, UpstreamTimeout
from aerodrome.providers.base import Provider
from aerodrome.routing.breaker import CircuitBreakers


@dataclass(slots=True)
class Attempts:
    """What routing did: how many calls, to which deployments, what failed."""

    count: int = 0
    deployment: DeploymentConfig | None = None
    errors: list[str] = field(default_factory=list)
    fallback: bool = False  # the answer came from another deployment than the first tried


@dataclass(slots=True)
class OpenStream:
    deployment: DeploymentConfig
    first: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]


class Router:
    def __init__(
        self,
        config: RoutingConfig,
        providers: Callable[[], Mapping[str, Provider]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._providers = providers
        self.breakers = CircuitBreakers(config.breaker)
        self._counter = itertools.count()
        self._rng = rng or random.Random()

    def order(self, resolved: ResolvedAlias) -> list[DeploymentConfig]:
        deps = list(resolved.deployments)
        strategy = resolved.alias.strategy
        if len(deps) > 1 and strategy == "round_robin":
            start = next(self._counter) % len(deps)
            deps = deps[start:] + deps[:start]
        elif len(deps) > 1 and strategy == "weighted":
            first = self._rng.choices(deps, weights=[d.weight for d in deps])[0]
            deps.remove(first)
            deps.insert(0, first)
        allowed = [d for d in deps if self.breakers.available(d.name)]
        if not allowed:
            raise ServiceUnavailable(
                f"every deployment of {resolved.name!r} is failing (circuit open); try again shortly",
                code="circuit_open",
            )
        return allowed

    def _backoff(self, attempt: int) -> float:
        base = self._config.backoff_initial_s * (2**attempt)
        return min(self._config.backoff_max_s, base) * (0.5 + self._rng.random() / 2)

    def _body_for(self, dep: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": dep.model}

    def _failed(self, resolved: ResolvedAlias, attempts: Attempts, last: UpstreamError) -> UpstreamError:
        summary = "; ".join(attempts.errors[-6:])
        message = f"{resolved.name}: every deployment failed after {attempts.count} attempt(s): {summary}"
        err_type = UpstreamTimeout if isinstance(last, UpstreamTimeout) else UpstreamError
        return err_type(message, code=last.code, upstream_status=last.upstream_status)

    async def _attempt(
        self,
        resolved: ResolvedAlias,
        attempts: Attempts,
        call: Callable[[Provider, DeploymentConfig], Any],
    ) -> Any:
        last: UpstreamError | None = None
        providers = self._providers()
        for position, dep in enumerate(self.order(resolved)):
            provider = providers[dep.provider]
            # Take the breaker's (half-open) trial slot only for a deployment actually called.
            if not self.breakers.allow(dep.name):
                continue
            for retry in range(self._config.max_retries + 1):
                attempts.count += 1
                try:
                    result = await call(provider, dep)
                except UpstreamRejected:
                    self.breakers.release(dep.name)  # the caller's fault says nothing on health
                    attempts.deployment = dep
                    raise
                except UpstreamError as exc:
                    last = exc
                    attempts.errors.append(f"{dep.name}: {exc.message}")
                    self.breakers.failure(dep.name)
                    if not exc.retryable or not self.breakers.allow(dep.name):
                        break
                    if retry < self._config.max_retries:
                        await asyncio.sleep(self._backoff(retry))
                    continue
                except BaseException:  # cancelled (client gone) or a bug: free a trial slot
                    self.breakers.release(dep.name)
                    raise
                self.breakers.success(dep.name)
                attempts.deployment = dep
                attempts.fallback = position > 0
                return result
        if last is None:  # every deployment's breaker opened while we waited for a trial slot
            raise ServiceUnavailable(
                f"every deployment of {resolved.name!r} is failing (circuit open); try again shortly",
                code="circuit_open",
            )
        raise self._failed(resolved, attempts, last)

    async def chat(self, resolved: ResolvedAlias, body: dict[str, Any], attempts: Attempts) -> dict[str, Any]:
        async def call(provider: Provider, dep: DeploymentConfig) -> dict[str, Any]:
            return await provider.chat(dep, self._body_for(dep, body))

        result: dict[str, Any] = await self._attempt(resolved, attempts, call)
        return result

    async def embeddings(
        self, resolved: ResolvedAlias, body: dict[str, Any], attempts: Attempts
    ) -> dict[str, Any]:
        async def call(provider: Provider, dep: DeploymentConfig) -> dict[str, Any]:
            return await provider.embeddings(dep, self._body_for(dep, body))

        result: dict[str, Any] = await self._attempt(resolved, attempts, call)
        return result

    async def open_stream(
        self, resolved: ResolvedAlias, body: dict[str, Any], attempts: Attempts
    ) -> OpenStream:
        async def call(provider: Provider, dep: DeploymentConfig) -> OpenStream:
            stream = provider.chat_stream(dep, self._body_for(dep, body))
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                raise UpstreamError(
                    f"{dep.name}: the upstream closed the stream without data", code="empty_stream"
                ) from None
            except BaseException:
                await _aclose(stream)
                raise
            return OpenStream(deployment=dep, first=first, rest=stream)

        result: OpenStream = await self._attempt(resolved, attempts, call)
        return result


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
