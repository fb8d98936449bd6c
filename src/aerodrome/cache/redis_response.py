"""The response cache on Redis, shared by every replica (scaled mode); see cache/response.py."""

from __future__ import annotations

from typing import Any

import orjson

from aerodrome.storage.redis_link import UNAVAILABLE, RedisLink


class RedisResponseCache:
    """Entries in Redis, shared by every replica; ``{prefix}:cache:{department}:...`` spreads
    departments over cluster slots (each call touches one key)."""

    def __init__(self, link: RedisLink, *, max_entry_bytes: int) -> None:
        self._link = link
        self._max_bytes = max_entry_bytes

    def _name(self, key: str) -> str:
        department, _, rest = key.partition(":")
        return f"{self._link.config.key_prefix}:cache:{{{department}}}:{rest}"

    async def get(self, key: str) -> dict[str, Any] | None:
        if not self._link.available:
            return None
        try:
            data = await self._link.client.get(self._name(key))
        except UNAVAILABLE as exc:
            self._link.failed(exc, "response cache")
            return None
        if data is None:
            return None
        value: dict[str, Any] = orjson.loads(data)
        return value

    async def put(self, key: str, response: dict[str, Any], ttl_s: float) -> None:
        data = orjson.dumps(response)
        if len(data) > self._max_bytes or not self._link.available:
            return
        try:
            await self._link.client.set(self._name(key), data, px=int(ttl_s * 1000))
        except UNAVAILABLE as exc:
            self._link.failed(exc, "response cache")
