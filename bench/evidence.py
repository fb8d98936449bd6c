"""Evidence benchmark: rollups and metrics over 100k and 1M generated runs, SQLite and PostgreSQL.

    python bench/evidence.py [--sizes 100000 1000000] [--backends sqlite postgresql] [--repeat 5] [--page]

Method (see docs/benchmarks.md, "Evidence"):

* data, per size N: one use case ("triage", 90% of the runs; "other" the rest) live in two
  departments, 600 users, runs spread uniformly over 120 days (about 14 runs per user and
  day at 1M), 7% flagged by a guardrail; feedback on 10% of the runs (caller ratings, 5% with
  flags), review items for 5%, tasks for 2% (a third baseline, the rest treatment with 1-3 run
  ids each). Written in bulk: executemany on SQLite, COPY on PostgreSQL (a scratch database
  on 127.0.0.1:5432, dropped afterwards);
* initial rollup: ``rollups.update`` over the whole table (one pass, batches of 20,000);
* rollup per 1,000 new runs: 1,000 runs appended after the watermark, then ``update`` timed;
  median of --repeat rounds;
* compute: ``metrics.compute`` over the whole 120-day window (rollup rows plus the raw runs of
  the partial days at the edges and the fresh tail) with tasks_per_day, then the same plus
  ``metrics.by_department`` (what a report computes); median and range of --repeat rounds;
* report: the whole HTML report (``evidence.report.build`` + ``render``: the metrics above, a
  segmented criterion, failure modes, budgets), median and range of --repeat rounds;
* 100k only: ``compute`` with no rollups at all (every run read raw), for comparison;
* evidence page (``--page``: only this, after the data and the initial rollup): what the web
  console's evidence tab of the use case computes, the next gate's checklist (``transitions.advance``
  to ``decision`` as a dry run, whose checks count every locked criterion's samples) plus the
  whole report (``evidence.report.build``); each part alone, and the page as the console computes
  it (``evidence.gate_and_report``: the gate given the report's sample sizes), median and range
  of --repeat rounds after one warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import Engine  # noqa: E402

from aerodrome.evidence import metrics, readiness, rollups, transitions  # noqa: E402
from aerodrome.evidence import report as pilot_report  # noqa: E402
from aerodrome.evidence.gate_and_report import gate_and_report  # noqa: E402
from aerodrome.evidence.metrics import Scope  # noqa: E402
from aerodrome.storage import migrate  # noqa: E402
from aerodrome.storage.engine import make_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://root@127.0.0.1:5432/test"
UC = "triage"
DAYS = 120
N_USERS = 600
START = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=DAYS)
CHUNK = 50_000

RUN_COLS = [
    "id",
    "request_id",
    "created_at",
    "endpoint",
    "user_id",
    "principal",
    "department_id",
    "use_case_id",
    "status",
    "http_status",
    "cost_usd",
    "latency_ms",
    "cache_hit",
    "meta",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "tokens_estimated",
    "attempts",
]
FEEDBACK_COLS = [
    "id",
    "run_id",
    "usecase_id",
    "department_id",
    "author",
    "author_user_id",
    "author_role",
    "rating",
    "score",
    "flags",
    "created_at",
]
REVIEW_COLS = [
    "id",
    "run_id",
    "usecase_id",
    "department_id",
    "requester",
    "user_id",
    "reasons",
    "status",
    "draft",
    "created_at",
]
TASK_COLS = [
    "id",
    "usecase_id",
    "department_id",
    "user_ref",
    "group",
    "started_at",
    "finished_at",
    "duration_s",
    "run_ids",
    "source",
    "created_by",
    "created_at",
]


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="aero-evidence-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"aero_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Writer:
    """Bulk rows into one table: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    def value(self, v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else v
        if isinstance(v, dict | list):
            return json.dumps(v)
        if isinstance(v, bool) and self.sqlite:
            return int(v)
        return v

    def write(self, table: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            quoted = ", ".join(f'"{c}"' for c in cols)
            if self.sqlite:
                marks = ", ".join("?" * len(cols))
                cur.executemany(
                    f"INSERT INTO {table} ({quoted}) VALUES ({marks})",
                    [tuple(self.value(v) for v in r) for r in rows],
                )
            else:
                with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for r in rows:
                        copy.write_row(tuple(self.value(v) for v in r))
            raw.commit()
        finally:
            raw.close()


def user(i: int) -> tuple[str, str, str]:
    return f"user-{i:04d}", f"u{i:04d}@example.com", "hr" if i < 350 else "finance"


def make_runs(
    rng: random.Random, first: int, n: int, start: dt.datetime, span_s: float
) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(first, first + n):
        uid, email, dept = user(min(N_USERS - 1, int(rng.paretovariate(1.2) * 40) % N_USERS))
        status = rng.choices(("ok", "fallback", "error", "rejected"), (88, 5, 4, 3))[0]
        flags = ["flagged:output"] if rng.random() < 0.07 else []
        rows.append(
            (
                f"b{i:09d}",
                f"q{i}",
                start + dt.timedelta(seconds=rng.random() * span_s),
                "usecase",
                uid,
                email,
                dept,
                UC if rng.random() < 0.9 else "other",
                status,
                200,
                rng.lognormvariate(-6, 0.6),
                rng.lognormvariate(7, 0.6),
                rng.random() < 0.1,
                {"usecase": {"flags": flags, "status": status}},
                False,
                400,
                120,
                False,
                1,
            )
        )
    return rows


def generate(engine: Engine, n: int, seed: int = 1) -> float:
    """Write the data set; returns seconds taken."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    w = Writer(engine)
    created = START - dt.timedelta(days=30)
    w.write(
        "departments",
        ["id", "name", "eligible_users", "content_logging", "created_at"],
        [("hr", "HR", 400, "metadata", created), ("finance", "Finance", 300, "metadata", created)],
    )
    w.write(
        "users",
        ["id", "email", "name", "department_id", "roles", "attributes", "disabled", "created_at"],
        [
            (
                *user(i)[:2],
                "",
                user(i)[2],
                ["user"],
                {"cohort": "volunteer" if i % 3 == 0 else "assigned"},
                False,
                created,
            )
            for i in range(N_USERS)
        ],
    )
    w.write(
        "usecases",
        ["id", "origin", "current_version", "stage", "status", "created_at", "updated_at", "updated_by"],
        [(UC, "api", 1, "pilot", "active", created, created, "bench")],
    )
    w.write(
        "usecase_versions",
        ["usecase_id", "version", "spec", "spec_hash", "created_at", "created_by"],
        [
            (
                UC,
                1,
                SPEC,
                "x",
                created,
                "b",
            )
        ],
    )
    span = DAYS * 86400.0
    fid = vid = tid = 0
    for first in range(0, n, CHUNK):
        batch = make_runs(rng, first, min(CHUNK, n - first), START, span)
        w.write("runs", RUN_COLS, batch)
        fb, rv, tk = [], [], []
        for r in batch:
            if r[7] != UC:
                continue
            x = rng.random()
            when = r[2] + dt.timedelta(minutes=2)
            if x < 0.10:
                rating = rng.choices(("up", "down", "5", "4", "2"), (60, 15, 10, 10, 5))[0]
                score = {"up": 1.0, "down": 0.0, "5": 1.0, "4": 0.75, "2": 0.25}[rating]
                flags = ["wrong"] if rng.random() < 0.05 else []
                fb.append((f"f{fid}", r[0], UC, r[6], r[5], r[4], "caller", rating, score, flags, when))
                fid += 1
            if 0.10 <= x < 0.15:
                status = rng.choices(("approved", "edited", "rejected", "pending"), (70, 15, 5, 10))[0]
                rv.append((f"v{vid}", r[0], UC, r[6], r[5], r[4], ["sample"], status, {"output": "x"}, r[2]))
                vid += 1
            if 0.15 <= x < 0.17:
                baseline = rng.random() < 1 / 3
                duration = (600 if baseline else 450) * rng.lognormvariate(0, 0.35)
                finished = r[2] - dt.timedelta(days=150) if baseline else r[2] + dt.timedelta(minutes=5)
                run_ids = (
                    []
                    if baseline
                    else [r[0], *(f"b{rng.randrange(n):09d}" for _ in range(rng.randint(0, 2)))]
                )
                group = "baseline" if baseline else "treatment"
                tk.append(
                    (
                        f"t{tid}",
                        UC,
                        r[6],
                        r[5],
                        group,
                        None,
                        finished,
                        duration,
                        run_ids,
                        "api",
                        "b",
                        finished,
                    )
                )
                tid += 1
        w.write("feedback", FEEDBACK_COLS, fb)
        w.write("review_items", REVIEW_COLS, rv)
        w.write("tasks", TASK_COLS, tk)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


SPEC = {  # a valid spec, so that the whole report can be built
    "id": "triage",
    "title": "Ticket triage",
    "departments": ["hr", "finance"],
    "inputs": {"ticket": {"type": "string", "required": True}},
    "prompt": "{{ ticket }}",
    "model": "chat-small",
    "success_criteria": [
        {"metric": "useful_rate", "at_least": 0.7, "min_samples": 200},
        {"metric": "time_saved_pct", "at_least": 0.15, "min_samples": 50},
        {"metric": "p95_latency_s", "at_most": 4, "min_samples": 100},
        {"metric": "adoption_rate", "at_least": 0.3, "min_samples": 50, "segment": {"department": "hr"}},
    ],
    "projected_volume": {"tasks_per_day": 500},
}


def page(engine: Engine, repeat: int) -> dict[str, Any]:
    """The console's evidence tab: the next gate's checklist (a dry run to ``decision``: the
    sample check of every locked criterion) and the whole pilot report."""
    evidence = transitions.Evidence(
        samples=partial(readiness.samples, engine), cost=partial(readiness.cost, engine)
    )

    def gate() -> Any:
        return transitions.advance(engine, UC, "decision", actor="bench", evidence=evidence, dry_run=True)

    def report() -> Any:
        return pilot_report.build(engine, UC)

    gate(), report()  # warm-up (imports, the first connections)
    out: dict[str, Any] = {}

    def tab() -> Any:  # what the console's handler computes: one read shared by both
        return gate_and_report(engine, UC, actor="bench", evidence=evidence)

    for name, fn in (("gate", gate), ("report", report), ("page", tab)):
        wall, cpu = [], []
        for _ in range(repeat):
            c0 = time.process_time()
            wall.append(timed(fn))
            cpu.append(time.process_time() - c0)
        out[f"{name}_s"] = spread(wall)
        out[f"{name}_cpu_s"] = spread(cpu)  # this process only (PostgreSQL's own work is not in it)
    data = report()
    out["check"] = {
        "samples": [c.detail for c in readiness.samples(engine, UC)],
        "allowed": gate()["allowed"],
        "recommendation": data["recommendation"],
        "criteria": [(c["criterion"], c["outcome"], c["interval"]) for c in data["criteria"]],
    }
    return out


def bench_page(backend: str, n: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "runs": n, "mode": "page"}
    with database(backend) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            out["generate_s"] = generate(engine, n)
            out["initial_rollup_s"] = timed(lambda: rollups.update(engine))
            if engine.dialect.name == "postgresql":
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()
            out.update(page(engine, repeat))
        finally:
            engine.dispose()
    return out


def bench(backend: str, n: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "runs": n}
    with database(backend) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            out["generate_s"] = generate(engine, n)
            scope = Scope(UC, START, END + dt.timedelta(days=1))
            if n <= 100_000:
                out["compute_raw_s"] = timed(
                    lambda: metrics.compute(engine, scope, tasks_per_day=500, refresh=False)
                )
            now = END + dt.timedelta(hours=1)
            out["initial_rollup_s"] = timed(lambda: rollups.update(engine, now=now))
            rng = random.Random(99)
            per_k = []
            for k in range(repeat):  # 1,000 new runs over ten minutes, then the update that takes them
                t_new = now + dt.timedelta(minutes=10 * k)
                Writer(engine).write("runs", RUN_COLS, make_runs(rng, n + 1000 * k, 1000, t_new, 600))
                per_k.append(timed(lambda t=t_new: rollups.update(engine, now=t + dt.timedelta(minutes=20))))
            out["rollup_per_1000_s"] = spread(per_k)
            with engine.connect() as conn:
                out["rollup_rows"] = conn.exec_driver_sql("SELECT count(*) FROM run_rollups").scalar()
            out["compute_s"] = spread(
                [timed(lambda: metrics.compute(engine, scope, tasks_per_day=500)) for _ in range(repeat)]
            )

            def report() -> None:
                metrics.compute(engine, scope, tasks_per_day=500)
                metrics.by_department(engine, scope, tasks_per_day=500)

            out["compute_and_departments_s"] = spread([timed(report) for _ in range(repeat)])
            out["report_html_s"] = spread(
                [
                    timed(lambda: pilot_report.render(pilot_report.build(engine, UC), "html"))
                    for _ in range(repeat)
                ]
            )
            got = metrics.compute(engine, scope, tasks_per_day=500)
            out["check"] = {
                k: got.values[k].as_dict() for k in ("useful_rate", "p95_latency_s", "time_saved_pct")
            }
        finally:
            engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--page", action="store_true", help="only the evidence page (gate checklist + report)")
    args = ap.parse_args()
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": os.getloadavg(),
        },
        "results": [],
    }
    if args.page:
        return main_page(args, report)
    print(
        f"{'backend':<11}{'runs':>10}{'generate':>10}{'rollup':>9}{'per 1k':>9}{'compute':>17}{'+by dept':>17}"
        f"{'report (html)':>19}"
    )
    for n in args.sizes:
        for backend in args.backends:
            r = bench(backend, n, args.repeat)
            report["results"].append(r)
            c, d, h = r["compute_s"], r["compute_and_departments_s"], r["report_html_s"]
            print(
                f"{backend:<11}{n:>10,}{r['generate_s']:>9.1f}s{r['initial_rollup_s']:>8.1f}s"
                f"{r['rollup_per_1000_s']['median'] * 1000:>7.0f}ms"
                f"{c['median']:>7.2f}s ({c['min']:.2f}-{c['max']:.2f})"
                f"{d['median']:>7.2f}s ({d['min']:.2f}-{d['max']:.2f})"
                f"{h['median']:>7.2f}s ({h['min']:.2f}-{h['max']:.2f})",
                flush=True,
            )
            if "compute_raw_s" in r:
                print(f"{'':<21}compute with no rollups (all raw): {r['compute_raw_s']:.2f}s", flush=True)
    report["machine"]["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"evidence-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"load average before {report['machine']['load_before']}, after {report['machine']['load_after']}")
    print(f"wrote {out}")
    return 0


def main_page(args: argparse.Namespace, report: dict[str, Any]) -> int:
    print(f"{'backend':<11}{'runs':>10}{'gate checklist':>24}{'report':>24}{'page (one read)':>24}")
    for n in args.sizes:
        for backend in args.backends:
            r = bench_page(backend, n, args.repeat)
            report["results"].append(r)
            cells = [r[k] for k in ("gate_s", "report_s", "page_s")]
            print(
                f"{backend:<11}{n:>10,}"
                + "".join(
                    f"{c['median'] * 1000:>9.0f} ms ({c['min'] * 1000:.0f}-{c['max'] * 1000:.0f})"
                    for c in cells
                ),
                flush=True,
            )
            cpu = "  ".join(
                f"{k} {r[k + '_cpu_s']['median'] * 1000:.0f} ms" for k in ("gate", "report", "page")
            )
            print(f"{'':<21}CPU of this process, median: {cpu}", flush=True)
            print(f"{'':<21}samples: {'; '.join(r['check']['samples'])}", flush=True)
    report["machine"]["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"evidence-page-{report['date']}.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"load average before {report['machine']['load_before']}, after {report['machine']['load_after']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
