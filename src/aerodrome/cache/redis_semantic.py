"""The semantic response cache on Redis, shared by every replica (scaled mode); see cache/semantic.py.

One hash per partition, ``{prefix}:scache:{<department>}:<data class>:<alias>:<digest>`` (the
department is the hash tag, as in the exact cache: one call touches one key, departments spread
over cluster slots). Each field is one question: its expiry, its vector (float32, base64) and the
answer. A search reads the partition's hash and compares in the replica (at most
``cache.semantic_max_per_partition`` vectors of 384 floats: no vector index is needed).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import orjson

from aerodrome.cache.semantic import Match, Probe, best
from aerodrome.storage.redis_link import UNAVAILABLE, RedisLink


class RedisSemanticStore:
    def __init__(self, link: RedisLink, *, max_per_partition: int, max_entry_bytes: int) -> None:
        self._link = link
        self._max_per_partition = max_per_partition
        self._max_bytes = max_entry_bytes

    def _name(self, partition: str) -> str:
        department, _, rest = partition.partition(":")
        return f"{self._link.config.key_prefix}:scache:{{{department}}}:{rest}"

    async def search(self, probe: Probe, threshold: float) -> Match | None:
        if not self._link.available:
            return None
        name = self._name(probe.partition)
        try:
            fields: dict[Any, Any] = await self._link.client.hgetall(name)
        except UNAVAILABLE as exc:
            self._link.failed(exc, "semantic cache")
            return None
        now_ms = time.time() * 1000
        live = [(f, orjson.loads(v)) for f, v in fields.items()]
        expired = [f for f, v in live if v["e"] < now_ms]
        live = [(f, v) for f, v in live if v["e"] >= now_ms]
        if expired:
            try:
                await self._link.client.hdel(name, *expired)
            except UNAVAILABLE as exc:
                self._link.failed(exc, "semantic cache")
        vectors = [np.frombuffer(base64.b64decode(v["v"]), dtype="<f4") for _, v in live]
        found = best(vectors, probe, threshold)
        if found is None:
            return None
        response: dict[str, Any] = live[found[0]][1]["r"]
        return Match(found[1], response)

    async def add(self, probe: Probe, response: dict[str, Any], ttl_s: float) -> None:
        if not self._link.available:
            return
        value = orjson.dumps(
            {
                "e": time.time() * 1000 + ttl_s * 1000,
                "v": base64.b64encode(probe.vector.astype("<f4").tobytes()).decode(),
                "r": response,
            }
        )
        if len(value) > self._max_bytes + 4096:
            return
        name = self._name(probe.partition)
        try:
            pipe = self._link.client.pipeline(transaction=False)
            pipe.hset(name, probe.entry, value)
            pipe.pexpire(name, int(ttl_s * 1000))  # the hash lives as long as its newest answer
            pipe.hlen(name)
            *_, size = await pipe.execute()
            if int(size) > self._max_per_partition:
                await self._trim(name)
        except UNAVAILABLE as exc:
            self._link.failed(exc, "semantic cache")

    async def _trim(self, name: str) -> None:
        """Drop the partition's oldest questions (earliest expiry) down to the limit."""
        fields: dict[Any, Any] = await self._link.client.hgetall(name)
        by_expiry = sorted(fields, key=lambda f: orjson.loads(fields[f])["e"])
        extra = by_expiry[: len(fields) - self._max_per_partition]
        if extra:
            await self._link.client.hdel(name, *extra)
