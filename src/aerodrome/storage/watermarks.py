"""Rollups that follow the run table behind a watermark: the batch loop they share.

A rollup (the evidence rollups, :mod:`aerodrome.evidence.rollups`; the dashboards' daily
rollups, :mod:`aerodrome.monitoring.daily_rollups`) holds every run created before its
watermark, a row of ``run_rollup_state`` named after it. :func:`advance` moves that watermark
forward to a cutoff in batches: it aggregates a batch outside any write transaction, then, in one
short transaction, locks the state row (the first statement updates it: a row lock on
PostgreSQL, the database write lock on SQLite), checks the watermark has not moved, merges the
batch and moves the watermark. Two replicas running it at once never count a run twice: the
slower one sees a moved watermark, discards its batch and starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, Table, select

from aerodrome.storage.tables import run_rollup_state, runs

B = TypeVar("B")


def watermark(conn: Connection, state: str) -> datetime | None:
    """Every run the rollup ``state`` keeps, created before this instant, is in it (None: none is)."""
    return conn.execute(select(run_rollup_state.c.watermark).where(run_rollup_state.c.name == state)).scalar()


def reset(conn: Connection, state: str) -> None:
    """Set the watermark of ``state`` back to nothing rolled up (the caller empties its tables in
    the same transaction, then rolls everything up again)."""
    conn.execute(
        sa.update(run_rollup_state)
        .where(run_rollup_state.c.name == state)
        .values(watermark=None, updated_at=datetime.now(UTC))
    )


def batch_end(conn: Connection, start: datetime | None, cutoff: datetime, size: int) -> datetime:
    """An upper bound B (exclusive) so that [start, B) holds about ``size`` runs, B <= cutoff."""
    conds = [runs.c.created_at < cutoff]
    if start is not None:
        conds.append(runs.c.created_at >= start)
    nth = conn.execute(
        select(runs.c.created_at).where(*conds).order_by(runs.c.created_at).offset(size).limit(1)
    ).scalar()
    if nth is None:
        return cutoff
    if start is not None and nth <= start:  # more than ``size`` runs share one instant
        later = conn.execute(
            select(runs.c.created_at)
            .where(runs.c.created_at > start, runs.c.created_at < cutoff)
            .order_by(runs.c.created_at)
            .limit(1)
        ).scalar()
        return later if later is not None else cutoff
    return min(nth, cutoff)


def advance(
    engine: Engine,
    state: str,
    *,
    cutoff: datetime,
    batch_size: int,
    aggregate: Callable[[Connection, datetime | None, datetime], B],
    merge: Callable[[Connection, B], None],
    count: Callable[[B], int],
) -> int:
    """Move the watermark of ``state`` to ``cutoff``, a batch of about ``batch_size`` runs at a
    time: ``aggregate(conn, start, end)`` sums the runs of ``[start, end)``, ``merge(conn, batch)``
    adds a batch holding runs to the rollup's rows (in the transaction that moves the watermark),
    ``count(batch)`` is its number of runs. Returns the runs added."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    added = 0
    while True:
        with engine.connect() as conn:
            start = watermark(conn, state)
            if start is not None and start >= cutoff:
                return added
            end = batch_end(conn, start, cutoff, batch_size)
            batch = aggregate(conn, start, end)
        n = count(batch)
        with engine.begin() as conn:
            # First statement: takes the row lock (PostgreSQL) or the write lock (SQLite).
            conn.execute(
                sa.update(run_rollup_state)
                .where(run_rollup_state.c.name == state)
                .values(updated_at=datetime.now(UTC))
            )
            if watermark(conn, state) != start:
                continue  # another updater moved on meanwhile: its batch stands, redo ours
            if n:
                merge(conn, batch)
            conn.execute(
                sa.update(run_rollup_state).where(run_rollup_state.c.name == state).values(watermark=end)
            )
        added += n


def rebuild(
    engine: Engine, state: str, tables: tuple[Table, ...], update: Callable[..., int], **kw: Any
) -> int:
    """Empty a rollup's ``tables`` and reset its watermark in one transaction, then roll every run
    up again with its ``update(engine, **kw)`` (after importing old runs)."""
    with engine.begin() as conn:
        reset(conn, state)
        for table in tables:
            conn.execute(sa.delete(table))
    return update(engine, **kw)


def day_start(d: date) -> datetime:
    """00:00 UTC of ``d``: where a rollup's whole days begin."""
    return datetime.combine(d, time(), tzinfo=UTC)


def ceil_day(t: datetime) -> date:
    """The first day starting at or after ``t``."""
    d = t.date()
    return d if t == day_start(d) else d + timedelta(days=1)
