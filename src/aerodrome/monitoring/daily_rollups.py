"""Daily rollups of every run for the dashboards, so a 90-day view does not scan 90 days of runs.

``run_daily_figures`` holds, per UTC day, department, use case, alias and deployment, the runs,
errors, cost, latency and tokens and a histogram of the answered runs' latencies;
``run_daily_users`` who ran something that day (with the department and use case). Both hold
every run of real use created before this rollup's **watermark** (row ``dashboard`` of
``run_rollup_state``): chat, embeddings and use-case runs, not the platform testing itself
(:data:`NOT_USAGE`: evaluation suites and red-team runs), unlike the evidence rollups, which keep
use-case runs only.

:func:`update` moves the watermark to ``now - grace`` in batches, with the evidence rollups'
grace and concurrency rules (see :mod:`aerodrome.evidence.rollups`): a batch is aggregated outside
any write transaction, then merged in one short transaction that first locks the state row and
checks that the watermark has not moved. :func:`plan` splits a window into the days to read here
and the spans to read from the raw runs (the partial day at the window's start, and everything
after the watermark), so each run is counted exactly once.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection, Engine, bindparam, select, tuple_

from aerodrome.evidence.latency_histogram import bucket_edges_ms
from aerodrome.evidence.rollups import BATCH_SIZE, GRACE_S
from aerodrome.storage import watermarks
from aerodrome.storage.tables import RUN_FIGURE_COLUMNS, run_daily_figures, run_daily_users, runs
from aerodrome.storage.watermarks import ceil_day, day_start

STATE = "dashboard"
ERROR_STATUSES = ("error", "rejected")  # no answer: left out of the latency quantiles
LOWS, _ = bucket_edges_ms()
"""Lower edge (ms) of each latency bucket. A run's bucket is found by comparing its latency with
these very floats, as SQL does (``latency_ms >= low``), so a bucket's runs can be fetched exactly."""

NOT_USAGE = ("eval", "redteam")
"""Endpoints of runs that are not usage: evaluation suites (aerodrome.evals.runner.ENDPOINT) and
red-team runs (aerodrome.evals.redteam.REDTEAM_ENDPOINT). The dashboards leave them out."""


def usage_only() -> ColumnElement[bool]:
    """The runs the dashboards count (served by ``ix_runs_console_figures``, which holds the endpoint)."""
    return runs.c.endpoint.not_in(NOT_USAGE)


FigureKey = tuple[date, str, str, str, str]
"""(UTC day, department, use case, alias, deployment); "" for none."""
UserKey = tuple[date, str, str, str]
"""(UTC day, department, use case, principal)."""


def bucket(latency_ms: float) -> int:
    """The latency bucket: the last lower edge at or below the latency (0 below 1 ms)."""
    return max(0, bisect.bisect_right(LOWS, latency_ms) - 1)


def bucket_range(b: int) -> tuple[float | None, float | None]:
    """SQL bounds of bucket ``b``: ``low <= latency_ms < high`` (None: unbounded)."""
    low = LOWS[b] if b > 0 else None
    high = LOWS[b + 1] if b + 1 < len(LOWS) else None
    return low, high


@dataclass(slots=True)
class Figures:
    """Sums of a set of runs (of one key, or merged)."""

    runs: int = 0
    errors: int = 0
    cost: float = 0.0
    latency: float = 0.0
    tokens: int = 0
    hist: dict[int, int] = field(default_factory=dict)

    def add_run(self, status: str, cost: float, latency_ms: float, tokens: int) -> None:
        self.runs += 1
        self.cost += cost
        self.latency += latency_ms
        self.tokens += tokens
        if status in ERROR_STATUSES:
            self.errors += 1
        else:
            b = bucket(latency_ms)
            self.hist[b] = self.hist.get(b, 0) + 1

    def merge(self, other: Figures) -> None:
        self.runs += other.runs
        self.errors += other.errors
        self.cost += other.cost
        self.latency += other.latency
        self.tokens += other.tokens
        for b, n in other.hist.items():
            self.hist[b] = self.hist.get(b, 0) + n

    def as_row(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "errors": self.errors,
            "cost_sum": self.cost,
            "latency_sum": self.latency,
            "tokens": self.tokens,
            "latency_hist": {str(b): self.hist[b] for b in sorted(self.hist)},
        }

    @classmethod
    def from_row(cls, row: Any) -> Figures:
        hist = row.latency_hist
        if isinstance(hist, str):
            hist = json.loads(hist)
        return cls(
            row.runs,
            row.errors,
            row.cost_sum,
            row.latency_sum,
            row.tokens,
            {int(b): int(n) for b, n in hist.items()},
        )


@dataclass(slots=True)
class Batch:
    figures: dict[FigureKey, Figures] = field(default_factory=dict)
    users: dict[UserKey, int] = field(default_factory=dict)

    def add(self, row: Any) -> None:
        day = row.created_at.astimezone(UTC).date()
        dept, uc = row.department_id or "", row.use_case_id or ""
        key = (day, dept, uc, row.alias or "", row.deployment or "")
        cell = self.figures.get(key)
        if cell is None:
            cell = self.figures[key] = Figures()
        cell.add_run(
            row.status,
            row.cost_usd or 0.0,
            row.latency_ms or 0.0,
            (row.prompt_tokens or 0) + (row.completion_tokens or 0),
        )
        ukey = (day, dept, uc, row.principal)
        self.users[ukey] = self.users.get(ukey, 0) + 1


RAW_COLUMNS = RUN_FIGURE_COLUMNS
"""What a run contributes (all in the ``ix_runs_console_figures`` covering index, with the endpoint
that :func:`usage_only` reads)."""


def aggregate(conn: Connection, start: datetime | None, end: datetime) -> Batch:
    conds = [runs.c.created_at < end, usage_only()]
    if start is not None:
        conds.append(runs.c.created_at >= start)
    batch = Batch()
    for row in conn.execute(select(*RAW_COLUMNS).where(*conds)):
        batch.add(row)
    return batch


# --- the watermark and update ------------------------------------------------------------------


def watermark(conn: Connection) -> datetime | None:
    """Every run created before this instant is in the daily rollups (None: none is)."""
    return watermarks.watermark(conn, STATE)


def _merge(conn: Connection, batch: Batch) -> None:
    days = [k[0] for k in batch.figures]
    first, last = min(days), max(days)
    f, u = run_daily_figures, run_daily_users
    old_figures = {
        (r.day, r.department_id, r.use_case_id, r.alias, r.deployment): Figures.from_row(r)
        for r in conn.execute(select(f).where(f.c.day >= first, f.c.day <= last))
    }
    inserts, updates = [], []
    for key, cell in batch.figures.items():
        old = old_figures.get(key)
        if old is None:
            inserts.append(
                dict(zip(("day", "department_id", "use_case_id", "alias", "deployment"), key, strict=True))
                | cell.as_row()
            )
        else:
            old.merge(cell)
            updates.append(
                dict(zip(("k_day", "k_dept", "k_uc", "k_alias", "k_dep"), key, strict=True)) | old.as_row()
            )
    if inserts:
        conn.execute(f.insert(), inserts)
    if updates:
        conn.execute(
            sa.update(f)
            .where(
                tuple_(f.c.day, f.c.department_id, f.c.use_case_id, f.c.alias, f.c.deployment)
                == tuple_(*(bindparam(k) for k in ("k_day", "k_dept", "k_uc", "k_alias", "k_dep")))
            )
            .values({c: bindparam(c) for c in Figures().as_row()}),
            updates,
        )
    old_users = {
        (r.day, r.department_id, r.use_case_id, r.principal): r.runs
        for r in conn.execute(select(u).where(u.c.day >= first, u.c.day <= last))
    }
    user_inserts, user_updates = [], []
    for ukey, n in batch.users.items():
        if ukey in old_users:
            user_updates.append(
                dict(zip(("k_day", "k_dept", "k_uc", "k_principal"), ukey, strict=True))
                | {"runs": old_users[ukey] + n}
            )
        else:
            user_inserts.append(
                dict(zip(("day", "department_id", "use_case_id", "principal"), ukey, strict=True))
                | {"runs": n}
            )
    if user_inserts:
        conn.execute(u.insert(), user_inserts)
    if user_updates:
        conn.execute(
            sa.update(u)
            .where(
                tuple_(u.c.day, u.c.department_id, u.c.use_case_id, u.c.principal)
                == tuple_(*(bindparam(k) for k in ("k_day", "k_dept", "k_uc", "k_principal")))
            )
            .values(runs=bindparam("runs")),
            user_updates,
        )


def update(
    engine: Engine, *, now: datetime | None = None, grace_s: float = GRACE_S, batch_size: int = BATCH_SIZE
) -> int:
    """Roll up the runs created after the watermark and before ``now - grace_s``; returns how
    many were added. Idempotent, and safe from several replicas at once."""
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(seconds=grace_s)
    return watermarks.advance(
        engine,
        STATE,
        cutoff=cutoff,
        batch_size=batch_size,
        aggregate=aggregate,
        merge=_merge,
        count=lambda batch: sum(c.runs for c in batch.figures.values()),
    )


def rebuild(engine: Engine, **kw: Any) -> int:
    """Drop the daily rollups and roll every run up again (after importing old runs)."""
    return watermarks.rebuild(engine, STATE, (run_daily_figures, run_daily_users), update, **kw)


# --- reading a window ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How the window ``[start, end)`` is read: rollup rows of the days ``[first, last)`` (none
    when ``first`` is None) and the raw runs of the ``raw`` spans."""

    mark: datetime | None
    first: date | None
    last: date
    raw: tuple[tuple[datetime, datetime], ...]

    def raw_days(self) -> set[date]:
        """The days some raw span touches (their rollup rows may hold part of them)."""
        out: set[date] = set()
        for lo, hi in self.raw:
            d = lo.date()
            while day_start(d) < hi:
                out.add(d)
                d += timedelta(days=1)
        return out


def plan(conn: Connection, start: datetime, end: datetime) -> Plan:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    mark = watermark(conn)
    first = ceil_day(start)
    if mark is None:
        return Plan(mark, None, first, ((start, end),))
    if mark <= end:  # the rows of the watermark's day hold its runs up to the watermark
        covered_to, last = mark, mark.date() + timedelta(days=1)
    else:  # the rows of the window's last day would hold runs after it: whole days only
        covered_to, last = day_start(end.date()), end.date()
    if covered_to <= day_start(first):
        return Plan(mark, None, first, ((start, end),))
    raw: list[tuple[datetime, datetime]] = []
    if start < day_start(first):
        raw.append((start, day_start(first)))
    if covered_to < end:
        raw.append((covered_to, end))
    return Plan(mark, first, last, tuple(raw))
