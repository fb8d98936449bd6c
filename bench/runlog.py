"""Run-record write rate: how many runs a second the RunWriter stores, SQLite and PostgreSQL.

    python bench/runlog.py [--runs 50000] [--backends sqlite postgresql] [--batch 500]
                           [--content full|metadata|realistic] [--drop-index ix_runs_user_created ...]
                           [--scan]

Method: a fresh database migrated to head (a temporary SQLite file in WAL mode; a scratch
PostgreSQL database on 127.0.0.1:5432, dropped afterwards); ``--runs`` records shaped like the
gateway's (metadata content; a 1 KB prompt and answer with ``--content full``; with ``--content
realistic`` a system prompt, retrieved passages and a question of about 2.5 KB and an answer of
about 1 KB, varied words that compress like prose), created over the last 60 days, are submitted
to one RunWriter as fast as a loop can, then ``wait_idle``; the rate is runs / (first submit ..
last commit). ``--drop-index`` removes indexes after migrating, to price each one.

``--scan`` then times the metadata scan behind the dashboards and budget views: count and cost
per department over the last 30 days, after ``ANALYZE`` (and ``VACUUM`` on PostgreSQL); the
median of 7 runs with a warm cache, plus the first, the size of the ``runs`` table and, on
PostgreSQL, the 8 KB pages the scan touches (``EXPLAIN (ANALYZE, BUFFERS)``).

``--migration`` instead stores ``--runs`` records at revision 0013 (content in ``runs``) and
times migration 0015 (moving the content to ``run_contents``) and its downgrade.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import psycopg
from sqlalchemy import Engine, MetaData, Table, func, select, text

from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine
from aerodrome.storage.tables import runs as runs_table

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"
NOW = datetime.now(UTC)
SPREAD_S = 60 * 86_400  # records are spread over the last 60 days
_WORDS = [
    "the",
    "policy",
    "employee",
    "leave",
    "request",
    "manager",
    "approval",
    "days",
    "annual",
    "salary",
    "contract",
    "clause",
    "notice",
    "period",
    "termination",
    "benefits",
    "pension",
    "insurance",
    "travel",
    "expense",
    "receipt",
    "invoice",
    "supplier",
    "payment",
    "terms",
    "quarter",
    "budget",
    "forecast",
    "department",
    "team",
    "project",
    "deadline",
    "review",
    "customer",
    "ticket",
    "refund",
    "order",
    "delivery",
    "warranty",
    "return",
    "account",
    "password",
    "access",
    "laptop",
    "network",
    "printer",
    "meeting",
    "office",
    "holiday",
    "sick",
    "parental",
    "training",
    "course",
    "certificate",
    "compliance",
    "audit",
    "risk",
    "data",
    "privacy",
    "consent",
]


def _prose(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        roll = rng.random()
        if roll < 0.75:
            w = rng.choice(_WORDS)
        elif roll < 0.85:
            w = str(rng.randint(1, 99_999))
        else:  # names, ids, rarer words: what keeps real text from compressing well
            w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:chars]


def _content(i: int, content: str) -> tuple[Any, Any]:
    if content == "metadata":
        return {"messages": 1}, {"chars": 1000}
    if content == "full":
        return {"messages": [{"role": "user", "content": "x" * 1000}]}, {"text": "y" * 1000}
    rng = random.Random(i)
    messages = [
        {"role": "system", "content": _prose(rng, 600)},
        {"role": "user", "content": "Passages:\n" + _prose(rng, 1600) + "\nQuestion: " + _prose(rng, 200)},
    ]
    return {"messages": messages}, {"text": _prose(rng, 1000)}


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"bench_runlog_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def record(i: int, content: str, total: int) -> dict[str, Any]:
    input_, output = _content(i, content)
    return {
        "id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "created_at": NOW - timedelta(seconds=SPREAD_S * (total - i) / total),
        "endpoint": "chat",
        "key_id": f"key-{i % 50}",
        "user_id": f"user-{i % 400}",
        "principal": f"user{i % 400}@example.com",
        "department_id": ("hr", "finance", "legal")[i % 3],
        "alias": "chat-small",
        "deployment": "mock-a",
        "provider": "mock",
        "upstream_model": "gpt-mock",
        "use_case_id": "triage" if i % 2 else None,
        "spec_version": 1 if i % 2 else None,
        "stream": bool(i % 4 == 0),
        "status": "ok",
        "error_code": None,
        "http_status": 200,
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "tokens_estimated": False,
        "cost_usd": 0.00028,
        "latency_ms": 412.5,
        "ttft_ms": None,
        "attempts": 1,
        "cache_hit": False,
        "input": input_,
        "output": output,
        "meta": None,
    }


def scan(engine: Engine) -> dict[str, Any]:
    """Count and cost per department over the last 30 days: what dashboards and budgets read."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
            size = conn.execute(text("SELECT pg_relation_size('runs')")).scalar_one()
        else:
            conn.exec_driver_sql("ANALYZE")
            size = conn.execute(text("SELECT sum(pgsize) FROM dbstat WHERE name = 'runs'")).scalar_one()
    since = NOW - timedelta(days=30)
    query = (
        select(runs_table.c.department_id, func.count(), func.sum(runs_table.c.cost_usd))
        .where(runs_table.c.created_at >= since)
        .group_by(runs_table.c.department_id)
    )
    times = []
    for _ in range(8):
        start = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        times.append((time.perf_counter() - start) * 1000)
    blocks = None
    if engine.dialect.name == "postgresql":  # pages the scan touches: a figure the machine's load cannot move
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}").scalar_one()
        top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
        blocks = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return {
        "scanned": sum(r[1] for r in rows),
        "pages_8kb": blocks,
        "first_ms": round(times[0], 1),
        "median_ms": round(statistics.median(times[1:]), 1),
        "runs_table_mb": round((size or 0) / 1e6, 1),
    }


def measure(
    url: str, runs: int, batch: int, content: str, drop: list[str], with_scan: bool
) -> dict[str, Any]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for name in drop:
            conn.execute(text(f"DROP INDEX {name}"))
    records = [record(i, content, runs) for i in range(runs)]
    writer = RunWriter(engine, flush_interval_s=0.2, batch_size=batch)
    start = time.perf_counter()
    for r in records:
        writer.submit(r)
    assert writer.wait_idle(600), "the writer did not finish"
    elapsed = time.perf_counter() - start
    writer.close()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
    out = {"runs": runs, "stored": stored, "seconds": round(elapsed, 3), "runs_per_s": round(runs / elapsed)}
    if with_scan:
        out["scan"] = scan(engine)
    engine.dispose()
    return out


def migration(url: str, runs: int, batch: int, content: str) -> dict[str, Any]:
    """Time migration 0015 (content out of ``runs``) and its downgrade over ``runs`` stored runs."""
    engine = make_engine(url)
    migrate.upgrade(engine, "0013")
    old_runs = Table("runs", MetaData(), autoload_with=engine)  # content columns included
    for start in range(0, runs, batch):
        rows = [record(i, content, runs) for i in range(start, min(start + batch, runs))]
        with engine.begin() as conn:
            conn.execute(old_runs.insert(), rows)
    began = time.perf_counter()
    migrate.upgrade(engine)
    up = time.perf_counter() - began
    with engine.connect() as conn:
        moved = conn.execute(text("SELECT count(*) FROM run_contents")).scalar_one()
    began = time.perf_counter()
    migrate.downgrade(engine, "0013")
    down = time.perf_counter() - began
    engine.dispose()
    return {"runs": runs, "moved": moved, "upgrade_s": round(up, 1), "downgrade_s": round(down, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--content", choices=["metadata", "full", "realistic"], default="metadata")
    ap.add_argument("--scan", action="store_true", help="then time the 30-day cost scan per department")
    ap.add_argument("--drop-index", nargs="*", default=[])
    ap.add_argument("--migration", action="store_true", help="instead, time migration 0015 and its downgrade")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    results = {}
    for backend in args.backends:
        with database(backend) as url:
            if args.migration:
                results[backend] = migration(url, args.runs, args.batch, args.content)
            else:
                results[backend] = measure(
                    url, args.runs, args.batch, args.content, args.drop_index, args.scan
                )
        print(f"{backend:10s} {results[backend]}", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "machine": platform.platform(),
                    "cpus": os.cpu_count(),
                    "args": vars(args),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
