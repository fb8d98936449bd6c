"""Scaled-mode benchmark: throughput with one and with two replicas, and a soak.

    python bench/scale.py [--duration S] [--soak-min M] [--soak-rps R] [--redis URL] [--pg URL]

What it runs (all on 127.0.0.1, every loop bounded in time):

* the fast mock upstream (bench/mock_upstream.py);
* a fresh PostgreSQL database on the machine's server (created, then dropped) and a key prefix
  of its own in the machine's Redis (removed at the end);
* ``aerodrome db upgrade``, ``aerodrome keys create``, then ``aerodrome serve`` once per replica:
  auth, department RPM/TPM limits and a budget, all in Redis; run records in PostgreSQL;
* throughput: wrk at 32 connections against one replica, then 16 + 16 against two replicas
  (two wrk processes at once, summed);
* soak (``--soak-min``, default 0.5 minute; 0 skips it): a fixed request rate spread over both
  replicas (wrk with a per-request delay), errors counted, each replica's RSS sampled every
  ``--sample-s`` seconds; then the run records written are counted against the answers.

Nothing is pinned: replicas, mock, wrk, PostgreSQL and Redis share the machine's cores, so the
two-replica figure says what a second process buys on this machine, not on a larger one.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psycopg
from machine import describe

from gateway import (  # bench/gateway.py: process, wrk and memory helpers
    BODY,
    HOST,
    RESULTS,
    forget_redis_keys,
    free_port,
    log,
    memory,
    mock_python,
    run_wrk,
    spawn,
    stop,
    stop_all,
    wait_first_success,
    wrk_script,
)

BENCH = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "from aerodrome.cli import main; main()"]
CORES = "0-1"  # nothing pinned: see the module docstring


def aerodrome(*args: str, cwd: Path, env: dict[str, str]) -> str:
    r = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise RuntimeError(f"aerodrome {' '.join(args)} failed: {(r.stderr or r.stdout)[-800:]}")
    return r.stdout


@contextlib.contextmanager
def fresh_database(admin_url: str):  # type: ignore[no-untyped-def]
    name = f"aero_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_runs(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM runs").fetchone()
    return int(row[0]) if row else 0


def wrk_both(ports: list[int], script: Path, conns: int, duration: float) -> dict:
    """One wrk per replica at the same time; requests and errors summed."""
    results: list[dict] = [{} for _ in ports]

    def one(i: int) -> None:
        results[i] = run_wrk(ports[i], script, conns, duration, core=CORES)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(ports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "per_replica": results,
        "requests": sum(r["requests"] for r in results),
        "ok_rps": round(sum(r["ok_rps"] for r in results), 1),
        "errors": sum(r["errors"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
    }


def paced_script(tmp: Path, headers: dict, delay_ms: float) -> Path:
    """A wrk script whose every connection waits delay_ms before each request (a fixed rate)."""
    path = wrk_script(tmp, "soak", BODY, headers)
    path.write_text(path.read_text() + f"\nfunction delay()\n  return {delay_ms:.0f}\nend\n")
    return path


def admission_latency(redis_url: str, n: int, prefix: str) -> dict:
    """One admission (2 request windows, 2 token windows, 1 budget) in process and on Redis:
    wall time per call (p50, p99) and this process's CPU time per call, sequential calls."""
    import asyncio
    import statistics

    from aerodrome.config import Budget, RedisConfig
    from aerodrome.limits.backend import LocalLimits, RateCheck
    from aerodrome.limits.budget import BudgetScope
    from aerodrome.limits.redis_backend import RedisLimits
    from aerodrome.storage.redis_link import RedisLink

    rates = [
        RateCheck("key", "k", "requests", 10**9, 1),
        RateCheck("department", "d", "requests", 10**9, 1),
        RateCheck("key", "k", "tokens", 10**12, 20),
        RateCheck("department", "d", "tokens", 10**12, 20),
    ]
    budgets = [BudgetScope("department", "d", Budget(usd=10**6, period="month"))]

    async def measure(backend: object) -> dict:
        walls = []
        cpu0 = time.process_time()
        for _ in range(n):
            t = time.perf_counter()
            adm = await backend.admit(rates, budgets, 0.0001)  # type: ignore[attr-defined]
            walls.append(time.perf_counter() - t)
            backend.settle(adm, 0.00005, [])  # type: ignore[attr-defined]
        cpu = time.process_time() - cpu0
        walls.sort()
        return {
            "calls": n,
            "p50_us": round(statistics.median(walls) * 1e6, 1),
            "p99_us": round(walls[int(n * 0.99)] * 1e6, 1),
            "cpu_us_per_call": round(cpu / n * 1e6, 1),
        }

    async def run() -> dict:
        local = await measure(LocalLimits())
        link = RedisLink(RedisConfig(url=redis_url, key_prefix=prefix))
        shared = RedisLimits(link, spent_of=lambda *a: 0.0)
        await shared.start()
        try:
            redis = await measure(shared)
        finally:
            await shared.close()
            await link.close()
        return {"in_process": local, "redis": redis}

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description="Scaled mode: throughput with 1 and 2 replicas, and a soak.")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per throughput point (default 10)")
    ap.add_argument("--soak-min", type=float, default=0.5, help="soak minutes (default 0.5; 0: no soak)")
    ap.add_argument(
        "--soak-rps", type=float, default=100.0, help="soak request rate, all replicas (default 100)"
    )
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples in the soak")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the shared Redis")
    ap.add_argument("--pg", default="postgresql://root@127.0.0.1:5432/test", help="a PostgreSQL admin URL")
    ap.add_argument("--admission", type=int, default=5000, help="admissions timed per backend (0: skip)")
    ap.add_argument(
        "--out", type=Path, default=None, help="results JSON (default bench/results/scale-<date>.json)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aerodrome-scale-"))
    prefix = f"scale-{os.getpid()}"
    results: dict = {
        "date": _dt.date.today().isoformat(),
        "machine": describe(),
        "args": vars(args) | {"out": None},
    }
    env = dict(os.environ, BENCH_UPSTREAM_KEY="sk-mock", AERODROME_LOG_LEVEL="warning")
    try:
        if args.admission:
            adm = admission_latency(args.redis, args.admission, prefix)
            results["admission"] = adm
            log(
                f"admission (4 windows + 1 budget): in process p50 {adm['in_process']['p50_us']} us, "
                f"p99 {adm['in_process']['p99_us']} us, CPU {adm['in_process']['cpu_us_per_call']} us; "
                f"Redis p50 {adm['redis']['p50_us']} us, p99 {adm['redis']['p99_us']} us, "
                f"CPU {adm['redis']['cpu_us_per_call']} us (one round trip)"
            )
        with fresh_database(args.pg) as db_url:
            mock_port = free_port()
            spawn(
                [mock_python(), str(BENCH / "mock_upstream.py"), "--port", str(mock_port)],
                CORES,
                logfile=tmp / "mock.log",
            )
            cfg = tmp / "aerodrome.yaml"
            cfg.write_text(
                textwrap.dedent(f"""\
                database: {{url: "{db_url}"}}
                redis: {{url: "{args.redis}", key_prefix: "{prefix}"}}
                departments:
                  - {{id: bench, name: Bench, content_logging: metadata,
                     limits: {{rpm: 100000000, tpm: 1000000000}}, budget: {{usd: 1000000, period: month}}}}
                providers:
                  - {{name: mock, kind: openai, base_url: "http://{HOST}:{mock_port}/v1", api_key: "env:BENCH_UPSTREAM_KEY"}}
                deployments:
                  - {{name: mock-model, provider: mock, model: mock-model-2024,
                     prices: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}, max_data_class: internal}}
                aliases:
                  - {{name: chat-bench, deployments: [mock-model]}}
                """)
            )
            aerodrome("db", "upgrade", "--config", str(cfg), cwd=tmp, env=env)
            out = aerodrome(
                "keys",
                "create",
                "--config",
                str(cfg),
                "--department",
                "bench",
                "--role",
                "user",
                "--name",
                "bench",
                cwd=tmp,
                env=env,
            )
            key = [ln.strip() for ln in out.splitlines() if ln.strip()][-1]
            headers = {"Authorization": f"Bearer {key}"}
            script = wrk_script(tmp, "load", BODY, headers)

            def start_replica(i: int) -> tuple[subprocess.Popen, int]:
                port = free_port()
                t0 = time.monotonic()
                p = spawn(
                    [*CLI, "serve", "--config", str(cfg), "--host", HOST, "--port", str(port)],
                    CORES,
                    cwd=tmp,
                    env=env,
                    logfile=tmp / f"replica-{i}.log",
                )
                startup = wait_first_success(port, headers, p, t0)
                log(f"replica {i} on port {port}: first request served {startup:.2f} s after spawn")
                return p, port

            first = start_replica(0)
            run_wrk(first[1], script, 8, 2, core=CORES)  # warm-up
            one = run_wrk(first[1], script, 32, args.duration, core=CORES)
            log(
                f"1 replica : {one['ok_rps']:.0f} req/s (c=32, p50 {one['p50_ms']} ms, p99 {one['p99_ms']} ms, errors {one['errors']})"
            )
            second = start_replica(1)
            run_wrk(second[1], script, 8, 2, core=CORES)
            two = wrk_both([first[1], second[1]], script, 16, args.duration)
            log(
                f"2 replicas: {two['ok_rps']:.0f} req/s (c=16+16, p50 {two['p50_ms']} ms, p99 {two['p99_ms']} ms, errors {two['errors']})"
            )
            results["throughput"] = {
                "one_replica": one,
                "two_replicas": two,
                "ratio": round(two["ok_rps"] / max(one["ok_rps"], 1), 2),
            }

            if args.soak_min > 0:
                conns = 8  # per replica
                delay_ms = (
                    1000.0 * 2 * conns / args.soak_rps
                )  # each connection's pace, so the sum is soak_rps
                soak_script = paced_script(tmp, headers, delay_ms)
                before = count_runs(db_url)
                samples: list[dict] = []
                stop_at = time.monotonic() + args.soak_min * 60
                box: dict = {}
                worker = threading.Thread(
                    target=lambda: box.update(
                        wrk_both([first[1], second[1]], soak_script, conns, args.soak_min * 60)
                    )
                )
                worker.start()
                t0 = time.monotonic()
                while worker.is_alive() and time.monotonic() < stop_at + 120:
                    samples.append(
                        {
                            "t_s": round(time.monotonic() - t0, 1),
                            "rss_mb": [memory(first[0])["vmrss_mb"], memory(second[0])["vmrss_mb"]],
                        }
                    )
                    worker.join(args.sample_s)
                samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 1),
                        "rss_mb": [memory(first[0])["vmrss_mb"], memory(second[0])["vmrss_mb"]],
                    }
                )
                soak = box
                time.sleep(2)  # the replicas write their last batches
                written = count_runs(db_url) - before
                rss0 = [s["rss_mb"] for s in samples[1:3]] or [samples[0]["rss_mb"]]
                results["soak"] = {
                    "minutes": args.soak_min,
                    "target_rps": args.soak_rps,
                    "requests": soak.get("requests"),
                    "ok_rps": soak.get("ok_rps"),
                    "errors": soak.get("errors"),
                    "p50_ms": soak.get("p50_ms"),
                    "p99_ms": soak.get("p99_ms"),
                    "run_records_written": written,
                    "rss_samples": samples,
                    "rss_first_mb": rss0[0],
                    "rss_last_mb": samples[-1]["rss_mb"],
                    "rss_max_mb": [max(s["rss_mb"][i] for s in samples) for i in range(2)],
                }
                log(
                    f"soak {args.soak_min:g} min at {args.soak_rps:g} req/s: {soak.get('requests')} requests, "
                    f"{soak.get('errors')} errors, {written} run records written, p99 {soak.get('p99_ms')} ms, "
                    f"RSS per replica first {rss0[0]} MB, last {samples[-1]['rss_mb']} MB, "
                    f"max {results['soak']['rss_max_mb']} MB"
                )
            for p, _ in (first, second):
                stop(p)
    finally:
        stop_all()
        forget_redis_keys(args.redis, prefix)
    out_path = args.out or RESULTS / f"scale-{results['date']}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
