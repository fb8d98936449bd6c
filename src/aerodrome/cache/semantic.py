"""Semantic response cache: an answer served again to a *similar* question (opt-in per alias).

An alias turns it on with ``cache: {ttl_s: ..., semantic: {threshold: 0.92}}``. The last user
message of a chat completion is embedded with the built-in all-MiniLM-L6-v2 model (the one the
knowledge base uses; nothing is downloaded) and compared by cosine with the questions answered
before **in the same partition**: the caller's department, the request's data class, the alias,
and a digest of everything else in the request (the earlier messages, the system prompt,
temperature, tools, ...). So an answer never crosses departments or data classes, and only the
wording of the last question may differ. The best match at or above the threshold is served.

Not semantic-cached (the exact cache still applies): streaming requests, use-case runs (their
prompt carries retrieved passages, which a similar question may not retrieve), questions longer
than ``max_chars`` (the model reads 256 word pieces; longer texts that differ near the end would
look alike), messages that are not plain text. Entries are kept in process, or in Redis in scaled
mode (cache/redis_semantic.py). An embedding model or a Redis that is unavailable is a miss,
never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from aerodrome.config import SemanticCacheConfig
from aerodrome.errors import AerodromeError

log = logging.getLogger("aerodrome.cache")
_NOT_KEYED = frozenset({"stream", "stream_options", "user"})


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking; L2-normalised vectors."""
        ...


@dataclass(frozen=True, slots=True)
class Probe:
    """One request's place in the semantic cache: its partition and its question's vector."""

    partition: str  # <department>:<data class>:<alias>:<digest of the rest of the request>
    entry: str  # digest of the question's text (the same question is stored once)
    vector: np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Match:
    similarity: float
    response: dict[str, Any]


def question_of(body: dict[str, Any]) -> str | None:
    """The text of the last message when it is the user's and plain text; else None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None


def partition_of(department: str, data_class: str | None, alias: str, body: dict[str, Any]) -> str:
    """``<department>:<data class>:<alias>:<sha256 of the request without its last question>``."""
    rest = {k: v for k, v in body.items() if k not in _NOT_KEYED}
    messages = list(rest.get("messages") or [])
    if messages:
        messages[-1] = {**messages[-1], "content": None}
    rest["messages"] = messages
    digest = hashlib.sha256(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    return f"{department}:{data_class or '-'}:{alias}:{digest}"


class SemanticStore(Protocol):
    async def search(self, probe: Probe, threshold: float) -> Match | None: ...

    async def add(self, probe: Probe, response: dict[str, Any], ttl_s: float) -> None: ...


class SemanticCache:
    """Embeds questions (in a worker thread) and asks a store for the nearest one answered."""

    def __init__(self, store: SemanticStore, embedder: Callable[[], TextEmbedder]) -> None:
        self.store = store
        self._embedder = embedder
        self._broken = False  # the local model cannot load (extra not installed): every call a miss

    async def probe(
        self,
        conf: SemanticCacheConfig,
        department: str,
        data_class: str | None,
        alias: str,
        body: dict[str, Any],
    ) -> Probe | None:
        """Where this request belongs, or None when it is not semantic-cached."""
        text = question_of(body)
        if self._broken or text is None or not text.strip() or len(text) > conf.max_chars:
            return None
        try:
            # in a worker thread: the first call opens the knowledge service and loads the model
            vectors = await asyncio.to_thread(lambda: self._embedder().embed([text]))
        except AerodromeError as exc:
            self._broken = True
            log.warning(
                "semantic cache off: no local embeddings",
                extra={"event": "cache.semantic_off", "reason": exc.message},
            )
            return None
        vector = np.asarray(vectors[0], dtype=np.float32)
        entry = hashlib.sha256(text.encode()).hexdigest()[:24]
        return Probe(partition_of(department, data_class, alias, body), entry, vector)

    async def search(self, probe: Probe, threshold: float) -> Match | None:
        return await self.store.search(probe, threshold)

    async def add(self, probe: Probe, response: dict[str, Any], ttl_s: float) -> None:
        await self.store.add(probe, response, ttl_s)


def best(
    vectors: Sequence[np.ndarray[Any, np.dtype[np.float32]]], probe: Probe, threshold: float
) -> tuple[int, float] | None:
    """Index and cosine of the stored vector nearest the probe's, if at or above the threshold."""
    if not vectors:
        return None
    scores = np.stack(vectors) @ probe.vector
    i = int(np.argmax(scores))
    score = float(scores[i])
    return (i, score) if score >= threshold else None


@dataclass(slots=True)
class _Entry:
    expires: float
    vector: np.ndarray[Any, np.dtype[np.float32]]
    data: bytes


class LocalSemanticStore:
    """Partitions in this process (LRU, at most ``max_partitions``), each holding at most
    ``max_per_partition`` questions (the oldest dropped first)."""

    def __init__(self, *, max_partitions: int, max_per_partition: int, max_entry_bytes: int) -> None:
        self._max_partitions = max_partitions
        self._max_per_partition = max_per_partition
        self._max_bytes = max_entry_bytes
        self._parts: OrderedDict[str, OrderedDict[str, _Entry]] = OrderedDict()

    async def search(self, probe: Probe, threshold: float) -> Match | None:
        part = self._parts.get(probe.partition)
        if part is None:
            return None
        now = time.monotonic()
        for name in [n for n, e in part.items() if e.expires < now]:
            del part[name]
        entries = list(part.values())
        found = best([e.vector for e in entries], probe, threshold)
        if found is None:
            return None
        self._parts.move_to_end(probe.partition)
        response: dict[str, Any] = orjson.loads(entries[found[0]].data)
        return Match(found[1], response)

    async def add(self, probe: Probe, response: dict[str, Any], ttl_s: float) -> None:
        data = orjson.dumps(response)
        if len(data) > self._max_bytes:
            return
        part = self._parts.setdefault(probe.partition, OrderedDict())
        part[probe.entry] = _Entry(time.monotonic() + ttl_s, probe.vector, data)
        part.move_to_end(probe.entry)
        while len(part) > self._max_per_partition:
            part.popitem(last=False)
        self._parts.move_to_end(probe.partition)
        while len(self._parts) > self._max_partitions:
            self._parts.popitem(last=False)
