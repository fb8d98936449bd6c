"""Run-record write rate: how many runs a second the RunWriter stores, SQLite and PostgreSQL.

    python bench/runlog.py [--runs 50000] [--backends sqlite postgresql] [--batch 500]
                           [--content full|metadata] [--drop-index ix_runs_user_created ...]

Method: a fresh database migrated to head (a temporary SQLite file in WAL mode; a scratch
PostgreSQL database on 127.0.0.1:5432, dropped afterwards); ``--runs`` records shaped like the
gateway's (metadata content, or a 1 KB prompt and answer with ``--content full``) are submitted
to one RunWriter as fast as a loop can, then ``wait_idle``; the rate is runs / (first submit ..
last commit). ``--drop-index`` removes indexes after migrating, to price each one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import psycopg
from sqlalchemy import text

from aerodrome.monitoring.run_log import RunWriter
from aerodrome.storage import migrate
from aerodrome.storage.engine import make_engine

PG_ADMIN = "postgresql://root@127.0.0.1:5432/test"


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


def record(i: int, content: str) -> dict[str, Any]:
    full = content == "full"
    return {
        "id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC),
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
        "input": {"messages": [{"role": "user", "content": "x" * 1000}]} if full else {"messages": 1},
        "output": {"text": "y" * 1000} if full else {"chars": 1000},
        "meta": None,
    }


def measure(url: str, runs: int, batch: int, content: str, drop: list[str]) -> dict[str, Any]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for name in drop:
            conn.execute(text(f"DROP INDEX {name}"))
    records = [record(i, content) for i in range(runs)]
    writer = RunWriter(engine, flush_interval_s=0.2, batch_size=batch)
    start = time.perf_counter()
    for r in records:
        writer.submit(r)
    assert writer.wait_idle(600), "the writer did not finish"
    elapsed = time.perf_counter() - start
    writer.close()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
    engine.dispose()
    return {"runs": runs, "stored": stored, "seconds": round(elapsed, 3), "runs_per_s": round(runs / elapsed)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--content", choices=["metadata", "full"], default="metadata")
    ap.add_argument("--drop-index", nargs="*", default=[])
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    results = {}
    for backend in args.backends:
        with database(backend) as url:
            results[backend] = measure(url, args.runs, args.batch, args.content, args.drop_index)
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
