"""The connection to the shared Redis of scaled mode, and whether it is reachable now.

Every user of Redis goes through one :class:`RedisLink`: it builds key names (all under
the hash tag ``{prefix}``, so the keys of one script are in one cluster slot), keeps
timeouts short, and remembers an outage for ``retry_s`` so that requests do not each
wait for a timeout while Redis is down. The first call after that window tries again:
when Redis is back, the gateway uses it again without a restart.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry  # the asyncio client's own (redis 8.2 warns on the sync one)
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from aerodrome.catalog.secrets import resolve_secret
from aerodrome.config import RedisConfig

log = logging.getLogger("aerodrome.redis")

# What an unreachable, restarting, failing-over (READONLY) or full (OOM) Redis raises: every
# Redis error counts as "Redis is not usable now", so the down policy applies and is logged.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OSError)


class RedisLink:
    def __init__(self, config: RedisConfig, *, base_dir: Path | None = None) -> None:
        self.config = config
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            config.url,
            password=resolve_secret(config.password, base_dir=base_dir),
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            # One retry: a pooled connection that Redis closed (restart) fails once, the retry reconnects.
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        self._down_until = 0.0
        self._down_since: float | None = None

    def key(self, *parts: str) -> str:
        """``{prefix}:part:part``: one hash tag for all of Aerodrome's keys (one cluster slot)."""
        return "{" + self.config.key_prefix + "}:" + ":".join(parts)

    @property
    def available(self) -> bool:
        """False while a recent failure is remembered (then callers apply their down policy)."""
        return time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: BaseException, what: str) -> None:
        """Note an outage: calls skip Redis for ``retry_s``; logged once per outage."""
        now = time.monotonic()
        self._down_until = now + self.config.retry_s
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "redis unreachable; applying the down policy",
                extra={"event": "redis.down", "during": what, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )

    def succeeded(self) -> None:
        if self._down_since is not None:
            log.warning(
                "redis reachable again",
                extra={"event": "redis.up", "down_s": round(time.monotonic() - self._down_since, 3)},
            )
            self._down_since = None
        self._down_until = 0.0

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except UNAVAILABLE as exc:
            self.failed(exc, "ping")
            return False
        self.succeeded()
        return True

    async def close(self) -> None:
        await self.client.aclose()
