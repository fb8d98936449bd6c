"""Key revocations announced to every replica through Redis (scaled mode).

A replica caches key checks for ``server.key_cache_ttl_s`` (≤ 5 s). Revoking a key (API or
CLI) publishes its prefix on ``{prefix}:revoked``; every replica listening drops that
entry from its cache at once, so the key is refused everywhere within milliseconds. While
Redis is unreachable nothing is announced and the cache TTL still bounds the delay; after
a reconnection a replica empties its whole cache, since it may have missed announcements.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import redis

from aerodrome.catalog.secrets import resolve_secret
from aerodrome.config import RedisConfig
from aerodrome.storage.redis_link import UNAVAILABLE, RedisLink

log = logging.getLogger("aerodrome.identity")
CHANNEL = "revoked"


def channel(key_prefix: str) -> str:
    return "{" + key_prefix + "}:" + CHANNEL


async def announce(link: RedisLink, prefix: str) -> bool:
    """Tell every replica that the key with this prefix is revoked; False if Redis is unreachable."""
    try:
        await link.client.publish(channel(link.config.key_prefix), prefix)
    except UNAVAILABLE as exc:
        link.failed(exc, "revocation announcement")
        return False
    return True


def announce_now(config: RedisConfig, prefix: str, *, base_dir: Path | None = None) -> bool:
    """The same from a command-line process (``aerodrome keys revoke``)."""
    client = redis.Redis.from_url(
        config.url,
        password=resolve_secret(config.password, base_dir=base_dir),
        socket_timeout=max(config.timeout_s, 1.0),
        socket_connect_timeout=max(config.timeout_s, 1.0),
    )
    try:
        client.publish(channel(config.key_prefix), prefix)
    except UNAVAILABLE:
        return False
    finally:
        client.close()
    return True


async def listen(link: RedisLink, forget: Callable[[str], None], forget_all: Callable[[], None]) -> None:
    """Drop revoked keys from this replica's cache as announced; reconnects until cancelled."""
    name = channel(link.config.key_prefix)
    while True:
        pubsub = link.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(name)
            forget_all()  # announcements may have been missed while disconnected
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    forget(str(message["data"]))
        except UNAVAILABLE as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # redis-py may turn a cancellation into this
                raise asyncio.CancelledError from exc
            log.info("revocation channel disconnected; reconnecting", extra={"error": str(exc)[:200]})
            await asyncio.sleep(link.config.retry_s)
        finally:
            await pubsub.aclose()
