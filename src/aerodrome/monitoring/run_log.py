"""Run records: one per accepted request, written off the hot path in batches.

The request path only appends a dict to a queue (no I/O); a writer thread inserts
batches every ``flush_interval_s`` or ``batch_size`` records, and :meth:`close`
flushes everything still pending (shutdown loses nothing).

A record carries the run's ``input`` and ``output`` (as the department's content logging kept
them) with its metadata; the writer stores the metadata in ``runs`` and the content, when there
is any, in ``run_contents``, in the same transaction, so scans of ``runs`` read narrow rows.

Records not yet written stay readable through :meth:`RunWriter.recent` (a bounded map of
the last ``recent_max`` submitted records, each dropped once its batch is committed), so a
run fetched right after it finished is found before it reaches the table.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from aerodrome.storage.tables import run_contents, runs

log = logging.getLogger("aerodrome.runs")
_STOP = object()
RECENT_MAX = 10_000
RETRY_S = 120.0  # how long a batch is kept and retried while the database is unreachable


def _insert_once(engine: Engine, table: Any, key: str) -> Insert:
    """INSERT that skips a run id already in the table: a record is written once, whoever writes it
    (a batch retried after an ambiguous commit; an interrupted call recorded by a survivor)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    return table.insert()


CONTENT = ("input", "output")


def split(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A submitted record as its ``runs`` row and its ``run_contents`` row (None: no content)."""
    row = {k: v for k, v in record.items() if k not in CONTENT}
    input_, output = record.get("input"), record.get("output")
    if input_ is None and output is None:
        return row, None
    return row, {"run_id": record["id"], "input": input_, "output": output}


class RunWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
        recent_max: int = RECENT_MAX,
        retry_s: float = RETRY_S,
    ) -> None:
        self._retry_s = retry_s
        self._engine = engine
        self._interval = flush_interval_s
        self._batch = batch_size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._written = 0
        self._failed = 0
        self._idle = threading.Condition()
        self._pending = 0
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # submitted, not yet written
        self._recent_max = recent_max
        self._stmt = _insert_once(engine, runs, "id")
        self._content_stmt = _insert_once(engine, run_contents, "run_id")
        # Called from the writer thread with the ids of each batch once it is committed (or lost and
        # logged): the in-flight journal of scaled mode forgets them then (gateway/inflight.py).
        self.on_committed: Callable[[list[str]], None] | None = None
        self._thread = threading.Thread(target=self._loop, name="aerodrome-run-writer", daemon=True)
        self._thread.start()

    @property
    def written(self) -> int:
        return self._written

    @property
    def failed(self) -> int:
        return self._failed

    def submit(self, record: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
            run_id = record.get("id")
            if run_id:
                self._recent[run_id] = record
                if len(self._recent) > self._recent_max:
                    self._recent.popitem(last=False)
        self._queue.put(record)

    def recent(self, run_id: str) -> dict[str, Any] | None:
        """A submitted record whose batch is not committed yet (None once it is in the table)."""
        with self._idle:
            return self._recent.get(run_id)

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch: list[dict[str, Any]] = []
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            if item is _STOP:
                stop = True
            else:
                batch.append(item)
            while len(batch) < self._batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            if batch:
                self._write(batch)

    def _insert(self, batch: list[dict[str, Any]]) -> None:
        rows, contents = [], []
        for record in batch:
            row, content = split(record)
            rows.append(row)
            if content is not None:
                contents.append(content)
        with self._engine.begin() as conn:
            conn.execute(self._stmt, rows)
            if contents:  # a run already written has its content already: skipped likewise
                conn.execute(self._content_stmt, contents)
        self._written += len(batch)

    def _insert_retrying(self, batch: list[dict[str, Any]]) -> None:
        """Insert, and while the database is unreachable (restart, failover) keep the batch and retry
        for up to ``retry_s``; records submitted meanwhile wait in the queue."""
        deadline = time.monotonic() + self._retry_s
        delay = 0.1
        while True:
            try:
                self._insert(batch)
            except (OperationalError, InterfaceError):
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.1:
                    log.warning(
                        "the database is unreachable; run records are kept and retried",
                        extra={
                            "event": "runs.write_retry",
                            "pending": self._pending,
                            "retry_s": self._retry_s,
                        },
                    )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if delay > 0.1:
                log.warning("run records written again", extra={"event": "runs.write_recovered"})
            return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            self._insert_retrying(batch)
        except Exception:  # boundary: never let the writer thread die
            if len(batch) == 1:
                self._failed += 1
                log.exception("could not write a run record", extra={"run_id": batch[0].get("id")})
            else:  # one bad record must not cost the others theirs: write them one by one
                log.warning("a batch of %d run records failed; writing them one by one", len(batch))
                for record in batch:
                    try:
                        self._insert([record])
                    except Exception:  # boundary: count and log the loss
                        self._failed += 1
                        log.exception("could not write a run record", extra={"run_id": record.get("id")})
        with self._idle:
            self._pending -= len(batch)
            for record in batch:  # committed (or lost and logged): the table answers from now on
                self._recent.pop(record.get("id") or "", None)
            self._idle.notify_all()
        if self.on_committed is not None:
            try:
                self.on_committed([r["id"] for r in batch if r.get("id")])
            except Exception:  # boundary: never let the writer thread die
                log.exception("could not report written run records")

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every submitted record is written (for tests and shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
