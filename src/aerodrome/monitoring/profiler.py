"""The traffic profiler: features of use-case runs computed off the request path.

The gateway hands each finished use-case run's inputs (as sent to the model, after redaction)
and answer to :meth:`Profiler.observe`, which only puts them on a queue. A worker thread
measures lengths, spots refusals, embeds the inputs in batches with the local MiniLM model
(when the department's content-logging policy allows it: ``monitoring.embed_inputs``) and adds
everything to in-memory hourly :class:`~aerodrome.monitoring.profiles.Profile` s, written every
``flush_interval_s`` and on close. The text itself is dropped once measured; only the
aggregates are written. When the worker falls behind (more than ``max_backlog`` runs waiting),
runs are still counted and measured but not embedded, so the request path never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np
from sqlalchemy import Engine

from aerodrome.errors import AerodromeError
from aerodrome.evidence.rollups import ANSWERED
from aerodrome.monitoring import profiles
from aerodrome.monitoring.profiles import Key, Profile
from aerodrome.monitoring.refusals import is_refusal

if TYPE_CHECKING:
    from aerodrome.gateway.run_context import RunContext

log = logging.getLogger("aerodrome.monitoring")
_STOP = object()
_EMBED_BATCH = 64


class Embedder(Protocol):
    model_id: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass(frozen=True, slots=True)
class Observation:
    usecase_id: str
    department_id: str
    created_at: datetime
    input_text: str | None
    output_text: str | None
    answered: bool
    embed: bool  # the department's policy allows summing the input's embedding


class Profiler:
    def __init__(
        self,
        engine: Engine,
        *,
        embedder: Callable[[], Embedder] | None,
        flush_interval_s: float = 10.0,
        max_backlog: int = 10_000,
        embed_policies: Sequence[str] = ("metadata", "full"),
    ) -> None:
        self._embed_policies = frozenset(embed_policies)
        self._engine = engine
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        self._embedding_off = embedder is None
        self._interval = flush_interval_s
        self._max_backlog = max_backlog
        self.writer_id = uuid.uuid4().hex
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._backlog = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: rows are read, added to, written
        self._pending: dict[Key, Profile] = defaultdict(Profile)
        self.observed = 0
        self.embedded = 0
        self.skipped_embeddings = 0
        self._thread = threading.Thread(target=self._loop, name="aerodrome-profiler", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Runs handed over and not measured yet."""
        with self._lock:
            return self._backlog

    def observe_run(self, ctx: RunContext, status: str, output_text: str | None) -> None:
        """A finished use-case run (called by the gateway; only builds a small record and queues it)."""
        inputs = ctx.usecase_inputs
        text = None
        if inputs is not None:
            text = "\n".join(v for v in inputs.values() if isinstance(v, str)) or None
        principal = ctx.principal
        self.observe(
            Observation(
                usecase_id=ctx.usecase_id or "",
                department_id=principal.department_id if principal else "",
                created_at=ctx.created_at,
                input_text=text,
                output_text=output_text if status in ANSWERED else None,
                answered=status in ANSWERED,
                embed=ctx.logging_policy in self._embed_policies,
            )
        )

    def observe(self, obs: Observation) -> None:
        """Non-blocking: the run's features are computed by the worker thread."""
        with self._lock:
            self._backlog += 1
        self._queue.put(obs)

    # ---------------------------------------------------------------- worker

    def _loop(self) -> None:
        last_flush = time.monotonic()
        stop = False
        while not stop:
            batch: list[Observation] = []
            try:
                item = self._queue.get(timeout=min(self._interval, 0.5))
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop = True
                    break
                assert isinstance(item, Observation)
                batch.append(item)
                if len(batch) >= _EMBED_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                self._measure(batch)
            if stop or time.monotonic() - last_flush >= self._interval:
                last_flush = time.monotonic()
                self.flush()

    def _measure(self, batch: list[Observation]) -> None:
        with self._lock:
            backlog = self._backlog
        wanted = [o for o in batch if o.embed and o.input_text]
        vectors: dict[int, np.ndarray] = {}
        model: str | None = None
        if wanted and backlog <= self._max_backlog:
            embedder = self._get_embedder()
            if embedder is not None:
                try:
                    raw = embedder.embed([o.input_text or "" for o in wanted])
                    vectors = {
                        id(o): np.asarray(v, dtype=np.float64) for o, v in zip(wanted, raw, strict=True)
                    }
                    model = embedder.model_id
                except Exception:  # boundary: lengths and rates still count without the embeddings
                    log.exception("could not embed inputs for drift monitoring")
        elif wanted:
            self.skipped_embeddings += len(wanted)
        basis = profiles.projection(len(next(iter(vectors.values())))) if vectors else None
        with self._lock:
            for o in batch:
                hour = profiles.hour_of(o.created_at)
                self._pending[(o.usecase_id, o.department_id, hour)].observe(
                    input_text=o.input_text,
                    output_text=o.output_text,
                    answered=o.answered,
                    refused=o.answered and is_refusal(o.output_text),
                    embedding=vectors.get(id(o)),
                    model=model,
                    basis=basis,
                )
            self.observed += len(batch)
            self.embedded += len(vectors)
            self._backlog -= len(batch)

    def _get_embedder(self) -> Embedder | None:
        if self._embedding_off:
            return None
        if self._embedder is None:
            assert self._embedder_factory is not None
            try:
                self._embedder = self._embedder_factory()
                self._embedder.embed(["warm up"])
            except AerodromeError as exc:  # e.g. the local extra is not installed: lengths only
                log.info("drift monitoring without input embeddings", extra={"reason": exc.message})
                self._embedding_off = True
                return None
        return self._embedder

    def flush(self) -> None:
        """Write what was measured (the worker calls it; tests and shutdown may too)."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = dict(self._pending), defaultdict(Profile)
            if not batch:
                return
            try:
                profiles.add_to_table(self._engine, self.writer_id, batch)
            except Exception:  # boundary: keep the aggregates and try again at the next flush
                log.exception("could not write traffic profiles; retrying at the next flush")
                with self._lock:
                    for key, prof in batch.items():
                        self._pending[key].merge(prof)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every observed run is measured and written (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                measured = self._backlog <= 0
            if measured:
                self.flush()
                with self._lock:
                    if not self._pending and self._backlog <= 0:
                        return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
