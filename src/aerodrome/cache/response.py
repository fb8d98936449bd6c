"""Exact response cache for chat completions: in process, or on Redis shared by every replica.

Off unless an alias turns it on (``aliases[].cache.ttl_s``). A cached answer is found only by
the same request (every field of the body but ``stream``, ``stream_options`` and ``user``, in
canonical JSON) **in the same partition**: the caller's department, the request's data class
and the alias that served it. So an answer is never served to another department, nor at
another data class. Streaming requests are not cached. A Redis that is down is a cache miss,
never an error. The Redis store is in cache/redis_response.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

log = logging.getLogger("aerodrome.cache")
_NOT_KEYED = frozenset({"stream", "stream_options", "user"})


def cache_key(department: str, data_class: str | None, alias: str, body: dict[str, Any]) -> str:
    """``<department>:<data class>:<alias>:<sha256 of the canonical request>``."""
    keyed = {k: v for k, v in body.items() if k not in _NOT_KEYED}
    digest = hashlib.sha256(orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{department}:{data_class or '-'}:{alias}:{digest}"


class ResponseCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, response: dict[str, Any], ttl_s: float) -> None: ...


class LocalResponseCache:
    """A bounded LRU map in this process (each replica has its own)."""

    def __init__(self, *, max_entries: int, max_entry_bytes: int) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> dict[str, Any] | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, data = found
        if expires < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        value: dict[str, Any] = orjson.loads(data)
        return value

    async def put(self, key: str, response: dict[str, Any], ttl_s: float) -> None:
        data = orjson.dumps(response)
        if len(data) > self._max_bytes:
            return
        self._entries[key] = (time.monotonic() + ttl_s, data)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
