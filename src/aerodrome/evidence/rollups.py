"""Incremental rollups of use-case runs, so metrics stay fast on large run tables.

``run_rollups`` holds one row per (use case, department, user, UTC day) with the counts, sums
and a log-scale latency histogram of every run created before the **watermark**
(``run_rollup_state``); ``run_latency_rollups`` holds the same histograms per (use case,
department, day) without the user, so a metric without a cohort sums them in SQL. :func:`update` moves the watermark forward to ``now - grace`` in
batches; :func:`cells` answers a time window from the rollup rows of the whole days inside it
plus the raw runs of the partial days at its edges and of the **fresh tail** after the
watermark, so a metric is current to the second while reading at most a day or two of raw runs.

Grace. A run's ``created_at`` is when the request *started*; its record reaches the table when
the answer is complete plus one batch of the run writer (0.2 s by default). Non-streaming calls
are bounded by the deployment timeout (60 s per attempt by default) times the attempts, and a
stream can last longer. :data:`GRACE_S` is therefore 300 s: a run written up to five minutes
after it started is still picked up by the next update (until then the fresh tail counts it).
A record written later than that, behind the watermark, is not counted; raise ``grace_s`` for
deployments that serve longer calls.

Concurrency. :func:`update` aggregates a batch outside any write transaction, then, in one
short transaction, locks the state row (the first statement updates it: a row lock on
PostgreSQL, the database write lock on SQLite), checks the watermark has not moved, merges the
batch into the rollup rows and advances the watermark. Two replicas running it at once never
count a run twice: the slower one sees a moved watermark, discards its batch and starts over.
The loop is :func:`aerodrome.storage.watermarks.advance`, shared with the dashboards' daily
rollups.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, and_, bindparam, func, literal_column, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from aerodrome.evidence.latency_histogram import bucket_of
from aerodrome.evidence.memo import Memo
from aerodrome.storage import watermarks
from aerodrome.storage.tables import run_latency_rollups, run_rollup_state, run_rollups, runs
from aerodrome.storage.watermarks import ceil_day, day_start

GRACE_S = 300.0
"""Seconds between a run's start and the watermark: late records inside it are not lost."""

BATCH_SIZE = 20_000
"""Runs aggregated per transaction by :func:`update`."""

STATE = "runs"
EVAL_ENDPOINT = "eval"  # the run records of evaluation suites (aerodrome.evals), never counted here
ANSWERED = ("ok", "fallback", "output_invalid")  # statuses with an answer: their latency counts
FALLBACKS = ("fallback", "output_invalid")
ERRORS = ("error",)

Key = tuple[str, str, str, date]
"""(use case, department or "", user key, UTC day)."""


@dataclass(slots=True)
class Cell:
    """Counts and sums of the runs of one key (or of any set of runs, once merged)."""

    runs: int = 0
    ok: int = 0
    errors: int = 0
    fallbacks: int = 0
    flagged: int = 0
    cache_hits: int = 0
    cost_sum: float = 0.0
    cost_sq_sum: float = 0.0
    latency_sum: float = 0.0
    hist: dict[int, int] = field(default_factory=dict)  # bucket → answered runs

    def add_run(self, status: str, cache_hit: bool, cost: float, latency_ms: float, flagged: bool) -> None:
        self.runs += 1
        self.ok += status == "ok"
        self.errors += status in ERRORS
        self.fallbacks += status in FALLBACKS
        self.flagged += bool(flagged)
        self.cache_hits += bool(cache_hit)
        self.cost_sum += cost
        self.cost_sq_sum += cost * cost
        if status in ANSWERED:
            self.latency_sum += latency_ms
            b = bucket_of(latency_ms)
            self.hist[b] = self.hist.get(b, 0) + 1

    def copy(self) -> Cell:
        return Cell(
            self.runs,
            self.ok,
            self.errors,
            self.fallbacks,
            self.flagged,
            self.cache_hits,
            self.cost_sum,
            self.cost_sq_sum,
            self.latency_sum,
            dict(self.hist),
        )

    def merge(self, other: Cell) -> None:
        self.runs += other.runs
        self.ok += other.ok
        self.errors += other.errors
        self.fallbacks += other.fallbacks
        self.flagged += other.flagged
        self.cache_hits += other.cache_hits
        self.cost_sum += other.cost_sum
        self.cost_sq_sum += other.cost_sq_sum
        self.latency_sum += other.latency_sum
        for b, n in other.hist.items():
            self.hist[b] = self.hist.get(b, 0) + n

    def hist_json(self) -> dict[str, int]:
        """The stored form: bucket index (as text) → count, empty buckets left out."""
        return {str(b): self.hist[b] for b in sorted(self.hist)}

    def as_row(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "ok": self.ok,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "flagged": self.flagged,
            "cache_hits": self.cache_hits,
            "cost_sum": self.cost_sum,
            "cost_sq_sum": self.cost_sq_sum,
            "latency_sum": self.latency_sum,
            "latency_hist": self.hist_json(),
        }

    @classmethod
    def from_row(cls, row: Any) -> Cell:
        hist = row.latency_hist
        if isinstance(hist, str):
            hist = json.loads(hist)
        return cls(
            row.runs,
            row.ok,
            row.errors,
            row.fallbacks,
            row.flagged,
            row.cache_hits,
            row.cost_sum,
            row.cost_sq_sum,
            row.latency_sum,
            {int(b): n for b, n in hist.items()},
        )


# --- reading raw runs -----------------------------------------------------------------------


def flagged_expr(dialect: str) -> ColumnElement[Any]:
    """1 when a guardrail flagged the run (``meta.usecase.flags`` is a non-empty list), else 0."""
    if dialect == "postgresql":
        flags = "(runs.meta -> 'usecase' -> 'flags')"
        return literal_column(
            f"CASE WHEN json_typeof({flags}) = 'array' "
            f"THEN (CASE WHEN json_array_length({flags}) > 0 THEN 1 ELSE 0 END) ELSE 0 END"
        )
    return literal_column("CASE WHEN json_array_length(runs.meta, '$.usecase.flags') > 0 THEN 1 ELSE 0 END")


def user_key_expr() -> ColumnElement[Any]:
    """runs.user_id, else the principal name (API keys without a user)."""
    return func.coalesce(runs.c.user_id, runs.c.principal)


EVIDENCE_ENDPOINT = "usecase"  # callers' use-case runs; red-team and evaluation runs use their own endpoint


def _time_filter(start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        runs.c.use_case_id.is_not(None),
        runs.c.endpoint == EVIDENCE_ENDPOINT,
    ]
    if start is not None:
        conds.append(runs.c.created_at >= start)
    if end is not None:
        conds.append(runs.c.created_at < end)
    return conds


def aggregate_runs(
    conn: Connection,
    start: datetime | None,
    end: datetime | None,
    *,
    usecase_id: str | None = None,
    department: str | None = None,
) -> dict[Key, Cell]:
    """Cells of the raw use-case runs created in ``[start, end)`` (None: unbounded)."""
    conds = _time_filter(start, end)
    if usecase_id is not None:
        conds.append(runs.c.use_case_id == usecase_id)
    if department is not None:
        conds.append(runs.c.department_id == department)
    query = select(
        runs.c.use_case_id,
        runs.c.department_id,
        user_key_expr(),
        runs.c.created_at,
        runs.c.status,
        runs.c.cache_hit,
        runs.c.cost_usd,
        runs.c.latency_ms,
        flagged_expr(conn.dialect.name),
    ).where(and_(*conds))
    out: dict[Key, Cell] = {}
    for uc, dept, user, created, status, hit, cost, latency, flagged in conn.execute(query):
        key = (uc, dept or "", user, created.astimezone(UTC).date())
        cell = out.get(key)
        if cell is None:
            cell = out[key] = Cell()
        cell.add_run(status, hit, cost or 0.0, latency or 0.0, flagged)
    return out


# --- the watermark and update ------------------------------------------------------------------


def watermark(conn_or_engine: Connection | Engine) -> datetime | None:
    """Every use-case run created before this instant is in ``run_rollups`` (None: none is)."""
    query = select(run_rollup_state.c.watermark).where(run_rollup_state.c.name == STATE)
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return conn.execute(query).scalar()
    return conn_or_engine.execute(query).scalar()


def _merge_into_table(conn: Connection, batch: dict[Key, Cell]) -> None:
    days = [k[3] for k in batch]
    existing: dict[Key, Cell] = {}
    rows = conn.execute(
        select(run_rollups).where(run_rollups.c.day >= min(days), run_rollups.c.day <= max(days))
    )
    for row in rows:
        key = (row.usecase_id, row.department_id, row.user_key, row.day)
        if key in batch:
            existing[key] = Cell.from_row(row)
    updates, inserts = [], []
    for key, cell in batch.items():
        old = existing.get(key)
        if old is not None:
            old.merge(cell)
            updates.append(
                {"k_uc": key[0], "k_dept": key[1], "k_user": key[2], "k_day": key[3], **old.as_row()}
            )
        else:
            inserts.append(
                {
                    "usecase_id": key[0],
                    "department_id": key[1],
                    "user_key": key[2],
                    "day": key[3],
                    **cell.as_row(),
                }
            )
    if inserts:
        conn.execute(run_rollups.insert(), inserts)
    _merge_latency(conn, batch, min(days), max(days))
    if updates:
        stmt = (
            sa.update(run_rollups)
            .where(
                tuple_(
                    run_rollups.c.usecase_id,
                    run_rollups.c.department_id,
                    run_rollups.c.user_key,
                    run_rollups.c.day,
                )
                == tuple_(bindparam("k_uc"), bindparam("k_dept"), bindparam("k_user"), bindparam("k_day"))
            )
            .values({c: bindparam(c) for c in Cell().as_row()})
        )
        conn.execute(stmt, updates)


def _merge_latency(conn: Connection, batch: dict[Key, Cell], first: date, last: date) -> None:
    """The batch's histograms, without the user, into run_latency_rollups."""
    counts: dict[tuple[str, str, date, int], int] = {}
    for (uc, dept, _user, day), cell in batch.items():
        for b, n in cell.hist.items():
            k = (uc, dept, day, b)
            counts[k] = counts.get(k, 0) + n
    if not counts:
        return
    t = run_latency_rollups
    existing = {
        (r.usecase_id, r.department_id, r.day, r.bucket): r.runs
        for r in conn.execute(select(t).where(t.c.day >= first, t.c.day <= last))
    }
    inserts, updates = [], []
    for (uc, dept, day, b), n in counts.items():
        old = existing.get((uc, dept, day, b))
        if old is None:
            inserts.append({"usecase_id": uc, "department_id": dept, "day": day, "bucket": b, "runs": n})
        else:
            updates.append({"k_uc": uc, "k_dept": dept, "k_day": day, "k_bucket": b, "runs": old + n})
    if inserts:
        conn.execute(t.insert(), inserts)
    if updates:
        stmt = (
            sa.update(t)
            .where(
                t.c.usecase_id == bindparam("k_uc"),
                t.c.department_id == bindparam("k_dept"),
                t.c.day == bindparam("k_day"),
                t.c.bucket == bindparam("k_bucket"),
            )
            .values(runs=bindparam("runs"))
        )
        conn.execute(stmt, updates)


def update(
    engine: Engine,
    *,
    now: datetime | None = None,
    grace_s: float = GRACE_S,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Roll up the runs created after the watermark and before ``now - grace_s``.

    Returns the number of use-case runs added. Idempotent (a second call right after finds
    nothing) and safe to run from several replicas at once (see the module docstring).
    """
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(seconds=grace_s)
    return watermarks.advance(
        engine,
        STATE,
        cutoff=cutoff,
        batch_size=batch_size,
        aggregate=aggregate_runs,
        merge=_merge_into_table,
        count=lambda batch: sum(c.runs for c in batch.values()),
    )


REFRESH_LAG_S = 180.0
"""How far the watermark may trail ``now - grace`` before a metric computation asked to refresh
rolls up first (:func:`catch_up`). The periodic rollup job (every minute by default) keeps it
closer than this, so a report viewed on a running platform writes nothing and reads rollups
that stay the same between jobs; with no job running, the raw tail stays short."""


def catch_up(engine: Engine, *, lag_s: float = REFRESH_LAG_S, now: datetime | None = None) -> int:
    """:func:`update` when the watermark trails ``now - grace`` by more than ``lag_s`` (or there is
    none); else nothing. Returns the runs added."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    mark = watermark(engine)
    if mark is not None and mark >= now - timedelta(seconds=GRACE_S + lag_s):
        return 0
    return update(engine, now=now)


def rebuild(engine: Engine, **kw: Any) -> int:
    """Drop every rollup and roll the whole run table up again (after importing old runs, or
    records written later than the grace). Keywords as for :func:`update`."""
    return watermarks.rebuild(engine, STATE, (run_rollups, run_latency_rollups), update, **kw)


# --- reading a window -----------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """How a window is read: rollup rows for days [first, last), raw runs for ``raw``."""

    mark: datetime | None
    first: date | None  # None: no rollup rows
    last: date
    raw: list[tuple[datetime | None, datetime]]
    state: tuple[datetime | None, datetime | None] = (None, None)  # the state row when planned


def _state(conn: Connection) -> tuple[datetime | None, datetime | None]:
    """The rollup state's (watermark, updated_at): every transaction that changes the rollup rows
    changes both (watermarks.advance and reset), so equal states mean equal rollup rows."""
    row = conn.execute(
        select(run_rollup_state.c.watermark, run_rollup_state.c.updated_at).where(
            run_rollup_state.c.name == STATE
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _plan(conn: Connection, start: datetime | None, end: datetime) -> _Plan:
    state = _state(conn)
    mark = state[0]
    first = ceil_day(start) if start is not None else date.min
    last = end.date()  # whole days end before this day
    if mark is None or first >= last:
        return _Plan(mark, None, last, [(start, end)], state)
    covered_to = min(mark, day_start(last))  # the rollup rows hold the runs of [first, covered_to)
    raw: list[tuple[datetime | None, datetime]] = []
    if start is not None:
        if start < day_start(first):
            raw.append((start, day_start(first)))
        covered_to = max(covered_to, day_start(first))
    if covered_to < end:
        raw.append((covered_to, end))
    return _Plan(mark, first, last, raw, state)


def _rollup_filter(
    usecase_id: str, plan: _Plan, department: str | None, user_keys: Collection[str] | None
) -> list[ColumnElement[bool]]:
    assert plan.first is not None
    conds = [
        run_rollups.c.usecase_id == usecase_id,
        run_rollups.c.day >= plan.first,
        run_rollups.c.day < plan.last,
    ]
    if department is not None:
        conds.append(run_rollups.c.department_id == department)
    if user_keys is not None:
        conds.append(run_rollups.c.user_key.in_(sorted(user_keys)))
    return conds


def _read_consistently(engine: Engine, start: datetime | None, end: datetime, read: Any) -> Any:
    """Run ``read(conn, plan)`` until no update committed during it (the watermark is unchanged)."""
    start = start.astimezone(UTC) if start is not None else None
    end = end.astimezone(UTC)
    for _ in range(10):
        with engine.connect() as conn:
            plan = _plan(conn, start, end)
            result = read(conn, plan)
            if watermark(conn) == plan.mark:
                return result
    raise RuntimeError("the rollups kept changing while being read")


def _raw(
    conn: Connection, plan: _Plan, usecase_id: str, department: str | None, user_keys: Collection[str] | None
) -> Iterator[tuple[Key, Cell]]:
    for lo, hi in plan.raw:
        for key, cell in aggregate_runs(conn, lo, hi, usecase_id=usecase_id, department=department).items():
            if user_keys is None or key[2] in user_keys:
                yield key, cell


def cells(
    engine: Engine,
    usecase_id: str,
    start: datetime | None,
    end: datetime,
    *,
    department: str | None = None,
    user_keys: Collection[str] | None = None,
) -> dict[Key, Cell]:
    """Every run of the use case created in ``[start, end)``, by key: the rollup rows of the whole
    UTC days inside the window, plus raw runs for the partial days at its edges and for the
    fresh tail after the watermark (each run counted once). ``user_keys`` keeps those users."""

    def read(conn: Connection, plan: _Plan) -> dict[Key, Cell]:
        out: dict[Key, Cell] = {}
        if plan.first is not None:
            query = select(run_rollups).where(*_rollup_filter(usecase_id, plan, department, user_keys))
            for row in conn.execute(query):
                out[(row.usecase_id, row.department_id, row.user_key, row.day)] = Cell.from_row(row)
        for key, cell in _raw(conn, plan, usecase_id, department, user_keys):
            if key in out:
                out[key].merge(cell)
            else:
                out[key] = cell
        return out

    result: dict[Key, Cell] = _read_consistently(engine, start, end, read)
    return result


def week_index(day: date) -> int:
    """Consecutive number of the ISO week (Monday to Sunday) holding ``day``: week 0 starts on
    0001-01-01, a Monday. ``stats.iso_week(date.fromordinal(i * 7 + 1))`` is its label."""
    return (day.toordinal() - 1) // 7


def week_index_expr(dialect: str) -> ColumnElement[Any]:
    """:func:`week_index` of ``run_rollups.day`` in SQL."""
    if dialect == "postgresql":
        return literal_column("((run_rollups.day - DATE '0001-01-01') / 7)")
    return literal_column("CAST((julianday(run_rollups.day) - 1721425.5) / 7 AS INTEGER)")


@dataclass(slots=True)
class Window:
    """A window's runs as metrics need them: totals per department, and runs per user and ISO
    week (:func:`week_index`)."""

    totals: dict[str, Cell] = field(default_factory=dict)  # department ("" for none) → totals
    activity: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (dept, user, week) → runs

    def copy(self) -> Window:
        return Window({d: c.copy() for d, c in self.totals.items()}, dict(self.activity))

    def add(self, key: Key, cell: Cell) -> None:
        _uc, dept, user, day = key
        total = self.totals.get(dept)
        if total is None:
            total = self.totals[dept] = Cell()
        total.merge(cell)
        akey = (dept, user, week_index(day))
        self.activity[akey] = self.activity.get(akey, 0) + cell.runs


WINDOWS: Memo[Window] = Memo(256)
"""The rollup part of windows already read, by use case, days, department, users and rollup
state (:mod:`aerodrome.evidence.memo`); each read still adds the raw runs of its edges and fresh
tail. An entry is never handed out itself: :func:`window` copies it."""


def window(
    engine: Engine,
    usecase_id: str,
    start: datetime | None,
    end: datetime,
    *,
    department: str | None = None,
    user_keys: Collection[str] | None = None,
    activity: bool = True,
) -> Window:
    """The same runs as :func:`cells`, summed per department in SQL (histograms excepted), which
    is what keeps a metric computation fast at millions of runs. ``activity=False`` leaves
    ``Window.activity`` empty (the totals alone are read)."""

    def read(conn: Connection, plan: _Plan) -> Window:
        out = Window()
        if plan.first is not None:
            key = (
                str(engine.url),
                usecase_id,
                plan.first,
                plan.last,
                department,
                None if user_keys is None else frozenset(user_keys),
                activity,
                plan.state,
            )
            held = WINDOWS.lookup(key)
            if held is None:
                held = read_rollups(conn, plan)
                if _state(conn) == plan.state:  # no rollup update committed while reading them
                    WINDOWS.store(key, held)
            out = held.copy()
        for key_, cell in _raw(conn, plan, usecase_id, department, user_keys):
            out.add(key_, cell)
        if not activity:
            out.activity.clear()
        return out

    def read_rollups(conn: Connection, plan: _Plan) -> Window:
        out = Window()
        if plan.first is not None:
            conds = _rollup_filter(usecase_id, plan, department, user_keys)
            c = run_rollups.c
            sums = [c.runs, c.ok, c.errors, c.fallbacks, c.flagged, c.cache_hits]
            sums += [c.cost_sum, c.cost_sq_sum, c.latency_sum]
            query = (
                select(c.department_id, *(func.sum(x) for x in sums)).where(*conds).group_by(c.department_id)
            )
            for dept, *values in conn.execute(query):
                runs_, ok, errors, fallbacks, flagged, hits = (int(v) for v in values[:6])
                cost, cost_sq, latency = (float(v) for v in values[6:])
                out.totals[dept] = Cell(runs_, ok, errors, fallbacks, flagged, hits, cost, cost_sq, latency)
            if user_keys is None:  # summed in SQL from the table without users
                lt = run_latency_rollups.c
                lconds = [lt.usecase_id == usecase_id, lt.day >= plan.first, lt.day < plan.last]
                if department is not None:
                    lconds.append(lt.department_id == department)
                query = (
                    select(lt.department_id, lt.bucket, func.sum(lt.runs))
                    .where(*lconds)
                    .group_by(lt.department_id, lt.bucket)
                )
                for dept, b, n in conn.execute(query):
                    out.totals.setdefault(dept, Cell()).hist[int(b)] = int(n)
            else:  # a cohort: the users' own histograms
                query = select(c.department_id, c.latency_hist).where(*conds)
                for dept, hist in conn.execute(query):
                    total = out.totals.setdefault(dept, Cell()).hist
                    for b, n in hist.items():
                        b = int(b)
                        total[b] = total.get(b, 0) + n
            if activity:
                week = week_index_expr(conn.dialect.name)
                query = (
                    select(c.department_id, c.user_key, week, func.sum(c.runs))
                    .where(*conds)
                    .group_by(c.department_id, c.user_key, week)
                )
                for dept, user, w, n in conn.execute(query):
                    out.activity[(dept, user, int(w))] = int(n)
        return out

    result: Window = _read_consistently(engine, start, end, read)
    return result
