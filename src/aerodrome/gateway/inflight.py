"""The in-flight journal of scaled mode: the calls of a replica that dies are still recorded.

Each replica has a random id and a heartbeat (its score in ``{p}:replicas``, Redis time in ms,
renewed every third of ``redis.heartbeat_ttl_s``). When a call is admitted, the little a run record
needs (run id, request id, time, endpoint, principal, department, alias, use case...) and its budget
reservation go into the replica's hash ``{p}:inflight:<id>``; once the call's run record is
committed, the entry is removed. Both are queued and sent in one pipelined round trip every
``BATCH_LINGER_S`` (50 ms) off the request path (an add and a remove in the same batch cancel out),
so admission does not wait for them and the cost does not grow with the request rate.

Every replica sweeps every ``redis.orphan_sweep_s`` (and once at start, which covers "on restart"):
a replica silent for ``heartbeat_ttl_s`` is suspected; still silent half as long again later (a
Redis outage stops every heartbeat, so one look is not enough), the TAKE script hands its whole
journal to exactly one sweeper and deletes it. The sweeper writes each entry as a run record with
status ``interrupted`` (``replica_lost``, HTTP 502, no cost) through the RunWriter, which skips a
run id already written (the dead replica may have committed the record just before dying), and
releases the call's budget reservation.

Best effort, as the docs say: a call admitted less than a batch (50 ms) before its replica died,
or admitted while Redis was down, is not journaled; it is then lost as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aerodrome.config import RedisConfig
from aerodrome.gateway.run_context import RunContext
from aerodrome.limits.redis_backend import RedisLimits
from aerodrome.monitoring.metrics import Metrics
from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage.redis_link import UNAVAILABLE, RedisLink

log = logging.getLogger("aerodrome.inflight")
BATCH_LINGER_S = 0.05  # one round trip carries the journal changes of 50 ms: ~20 a second at most
MAX_PENDING = 100_000

# KEYS: registry zset. ARGV: replica id. Renews the replica's heartbeat with Redis time (ms).
BEAT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1
"""

# KEYS: registry zset, suspects hash, the replica's in-flight hash. ARGV: replica id, ttl ms, grace ms.
# Returns nil (alive, or not dead long enough) or the journal's entries, which it deletes: one
# sweeper gets them, never two.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beat = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if beat ~= nil and now - beat < tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return false
end
local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if seen == nil then
  redis.call('HSET', KEYS[2], ARGV[1], now)
  return false
end
if now - seen < tonumber(ARGV[3]) then
  return false
end
local entries = redis.call('HVALS', KEYS[3])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return entries
"""


def journal_entry(ctx: RunContext, *, stream: bool, held: Sequence[str]) -> dict[str, Any]:
    """What a survivor needs to write this call's run record, and to release its reservation."""
    p = ctx.principal
    return {
        "id": ctx.run_id,
        "request_id": ctx.request_id,
        "created_at": ctx.created_at.isoformat(),
        "endpoint": ctx.endpoint,
        "key_id": p.key_id if p else None,
        "user_id": p.user_id if p else None,
        "principal": p.name if p else "anonymous",
        "department_id": p.department_id if p else None,
        "alias": ctx.resolved.name if ctx.resolved else ctx.model,
        "use_case_id": ctx.usecase_id,
        "spec_version": ctx.spec_version,
        "stream": stream,
        "held": list(held),
    }


def interrupted_record(entry: dict[str, Any], *, replica: str, by: str, now: datetime) -> dict[str, Any]:
    """The run record of a call whose replica died: status interrupted, no known cost or tokens."""
    created = datetime.fromisoformat(entry["created_at"])
    detected_ms = round(max(0.0, (now - created).total_seconds()) * 1000, 3)
    return {
        "id": entry["id"],
        "request_id": entry["request_id"],
        "created_at": created,
        "endpoint": entry["endpoint"],
        "key_id": entry.get("key_id"),
        "user_id": entry.get("user_id"),
        "principal": entry.get("principal") or "anonymous",
        "department_id": entry.get("department_id"),
        "alias": entry.get("alias"),
        "deployment": None,
        "provider": None,
        "upstream_model": None,
        "use_case_id": entry.get("use_case_id"),
        "spec_version": entry.get("spec_version"),
        "stream": bool(entry.get("stream")),
        "status": "interrupted",
        "error_code": "replica_lost",
        "http_status": 502,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": 0.0,
        "latency_ms": detected_ms,  # not the call's latency (unknown): the time until it was found
        "ttft_ms": None,
        "attempts": 0,
        "cache_hit": False,
        "input": None,
        "output": None,
        "meta": {
            "interrupted": {
                "replica": replica,
                "recorded_by": by,
                "detected_after_ms": detected_ms,
                "reason": "the replica serving this call stopped (killed or crashed) before recording it",
            }
        },
    }


class InflightJournal:
    def __init__(
        self,
        link: RedisLink,
        *,
        writer: RunWriter,
        metrics: Metrics,
        release: Callable[[Sequence[str]], None] | None = None,
        replica_id: str | None = None,
    ) -> None:
        self._link = link
        self._config: RedisConfig = link.config
        self._writer = writer
        self._metrics = metrics
        self._release = release
        self.replica_id = replica_id or os.urandom(8).hex()
        self._registry = link.key("replicas")
        self._suspects = link.key("replicas", "suspects")
        self._hash = self.hash_of(self.replica_id)
        self._beat = link.client.register_script(BEAT)
        self._take = link.client.register_script(TAKE)
        self._adds: dict[str, str] = {}  # run id -> entry (JSON), not sent yet
        self._removes: set[str] = set()
        self._sent: set[str] = set()  # run ids whose entry is in Redis (their calls are in flight)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.recorded = 0  # interrupted runs recorded by this replica

    def hash_of(self, replica_id: str) -> str:
        return self._link.key("inflight", replica_id)

    # ------------------------------------------------------------------ the journal

    def admitted(self, ctx: RunContext, stream: bool) -> None:
        """Gateway hook: journal a call just admitted (with its budget reservation, if any)."""
        self.add(journal_entry(ctx, stream=stream, held=RedisLimits.held_of(ctx.reservation)))

    def add(self, entry: dict[str, Any]) -> None:
        """Journal an admitted call (never waits; dropped when too much is pending)."""
        if len(self._adds) + len(self._removes) >= MAX_PENDING:
            return
        self._adds[entry["id"]] = json.dumps(entry, separators=(",", ":"), default=str)
        self._wake.set()

    def forget(self, run_ids: list[str]) -> None:
        """The run records of these calls are committed: drop their entries (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(self._forget_now, run_ids)

    def _forget_now(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            if self._adds.pop(run_id, None) is not None:
                continue  # never sent: nothing to remove in Redis
            if run_id in self._sent:  # else not journaled (a refused call, a survivor's record)
                self._sent.discard(run_id)
                self._removes.add(run_id)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._adds) + len(self._removes)

    async def _flush(self) -> None:
        adds, removes = self._adds, self._removes
        if not adds and not removes:
            return
        self._adds, self._removes = {}, set()
        if not self._link.available:
            self._removes |= removes  # entries already in Redis must go; new adds are dropped
            return
        self._sent.update(adds)  # before the round trip: a removal meanwhile must be sent
        try:
            async with self._link.client.pipeline(transaction=False) as pipe:
                if adds:
                    pipe.hset(self._hash, mapping=dict[Any, Any](adds))
                if removes:
                    pipe.hdel(self._hash, *removes)
                await pipe.execute()
        except UNAVAILABLE as exc:
            self._link.failed(exc, "in-flight journal")
            self._removes |= removes
            return
        self._link.succeeded()

    async def _flusher(self) -> None:
        while not self._closing:
            await self._wake.wait()
            await asyncio.sleep(BATCH_LINGER_S)
            self._wake.clear()
            try:
                await self._flush()
            except Exception:  # boundary: the journal is best effort, the flusher must live on
                log.exception("the in-flight journal could not be written")
            if self._removes and not self._link.available:
                await asyncio.sleep(self._config.retry_s)
                self._wake.set()

    # ------------------------------------------------------------------ heartbeat and sweep

    async def beat(self) -> None:
        await self._beat(keys=[self._registry], args=[self.replica_id])

    async def sweep(self) -> int:
        """Record the journaled calls of every dead replica this sweeper wins; returns how many."""
        ttl_ms = int(self._config.heartbeat_ttl_s * 1000)
        recorded = 0
        replicas: list[str] = await self._link.client.zrange(self._registry, 0, -1)  # type: ignore[assignment]
        for replica in replicas:
            if replica == self.replica_id:
                continue
            entries = await self._take(
                keys=[self._registry, self._suspects, self.hash_of(replica)],
                args=[replica, ttl_ms, ttl_ms // 2],
            )
            if entries:
                recorded += self._record(replica, entries)
        return recorded

    def _record(self, replica: str, entries: list[str]) -> int:
        now = datetime.now(UTC)
        count = 0
        for raw in entries:
            try:
                entry = json.loads(raw)
                record = interrupted_record(entry, replica=replica, by=self.replica_id, now=now)
            except (ValueError, KeyError, TypeError):
                log.exception("an in-flight journal entry could not be read", extra={"replica": replica})
                continue
            self._writer.submit(record)
            if self._release is not None and entry.get("held"):
                self._release(entry["held"])
            count += 1
        self.recorded += count
        self._metrics.runs_interrupted.inc(count)
        log.warning(
            "calls in flight on a dead replica recorded as interrupted",
            extra={"event": "runs.interrupted", "replica": replica, "count": count},
        )
        return count

    async def _sweeper(self) -> None:
        period = min(self._config.heartbeat_ttl_s / 3, self._config.orphan_sweep_s)
        loop = asyncio.get_running_loop()
        last_sweep = float("-inf")
        while not self._closing:
            try:
                if self._link.available:
                    await self.beat()
                    if loop.time() - last_sweep >= self._config.orphan_sweep_s:
                        last_sweep = loop.time()
                        await self.sweep()
            except UNAVAILABLE as exc:
                self._link.failed(exc, "replica heartbeat")
            except Exception:  # boundary: the sweeper must outlive any one bad sweep
                log.exception("the sweep for dead replicas failed")
            await asyncio.sleep(period)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._flusher()), asyncio.create_task(self._sweeper())]

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop, and drop this replica's journal: called after the RunWriter has written every record
        (a graceful stop finishes its calls first), so nothing in it is left to record."""
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._adds.clear()
        self._removes.clear()
        self._sent.clear()
        with contextlib.suppress(*UNAVAILABLE, TimeoutError):
            async with asyncio.timeout(timeout_s):
                async with self._link.client.pipeline(transaction=False) as pipe:
                    pipe.delete(self._hash)
                    pipe.zrem(self._registry, self.replica_id)
                    pipe.hdel(self._suspects, self.replica_id)
                    await pipe.execute()
