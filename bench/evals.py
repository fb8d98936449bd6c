"""Evaluation throughput on the local engine (issue 6): cases per second.

    python bench/evals.py [--repeat R] [--concurrency 1,4] [--out FILE.json]

What it does (see docs/benchmarks.md, "Evaluations: throughput"):

* writes the demo workspace (``aerodrome demo``'s config, knowledge, use cases and their eval
  suites) into a temporary folder and ingests its collections with the local MiniLM embeddings;
* for each concurrency (``evals.concurrency``), starts the platform's runtime in this process,
  warms it (guardrail engines, embeddings, one pass over every suite, not timed) and then runs each
  demo suite ``--repeat`` times through ``Evaluations.execute``: the same path as
  ``aerodrome eval`` (use-case runner, gateway admission, run records, assertions, storing results);
* prints per use case the cases, pass rate, wall time and cases/s, and the total.

The local engine answers extractively, so this measures the platform's own evaluation machinery plus
retrieval, guardrails and the local engine; a remote model adds its latency per case (divided by
the concurrency). Figures only: nothing is asserted; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe  # bench/machine.py (the script's own folder is on sys.path)

DEMO_USECASES = ("hr-policy-assistant", "support-reply-drafter", "contract-clause-extractor")


async def _measure(config_path: Path, concurrency: int, repeat: int) -> dict[str, Any]:
    from aerodrome.config import load_config
    from aerodrome.runtime import Runtime, open_database

    cfg = load_config(config_path)
    cfg.evals.concurrency = concurrency
    engine = open_database(cfg)
    rt = await Runtime.start(cfg, engine, run_jobs=False)
    try:
        await asyncio.to_thread(rt.usecases.warm)
        for usecase in DEMO_USECASES:  # warm-up pass: models loaded, caches filled
            plan = await asyncio.to_thread(rt.evals.plan, usecase)
            await asyncio.to_thread(rt.evals.start, plan, actor="bench")
            await rt.evals.execute(plan, actor="bench")
        out: dict[str, Any] = {"concurrency": concurrency, "usecases": {}}
        total_cases, total_s = 0, 0.0
        for usecase in DEMO_USECASES:
            cases, passed, elapsed = 0, 0, 0.0
            for _ in range(repeat):
                plan = await asyncio.to_thread(rt.evals.plan, usecase)
                await asyncio.to_thread(rt.evals.start, plan, actor="bench")
                started = time.perf_counter()
                run = await rt.evals.execute(plan, actor="bench")
                elapsed += time.perf_counter() - started
                cases += run["cases"]
                passed += run["passed"]
            out["usecases"][usecase] = {
                "cases": cases,
                "pass_rate": passed / cases,
                "seconds": round(elapsed, 3),
                "cases_per_s": round(cases / elapsed, 2),
            }
            total_cases += cases
            total_s += elapsed
        out["total"] = {
            "cases": total_cases,
            "seconds": round(total_s, 3),
            "cases_per_s": round(total_cases / total_s, 2),
        }
        return out
    finally:
        await rt.stop()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each suite per concurrency")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated evals.concurrency values")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    from aerodrome.cli.demo import prepare
    from aerodrome.cli.knowledge import ingest_all

    results: dict[str, Any] = {"machine": describe(), "repeat": args.repeat, "runs": []}
    with tempfile.TemporaryDirectory(prefix="aerodrome-bench-evals-") as tmp:
        config_path, _ = prepare(Path(tmp) / "demo")
        ingest_all(config_path)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            figures = asyncio.run(_measure(config_path, concurrency, args.repeat))
            results["runs"].append(figures)
            print(f"\nconcurrency {concurrency}")
            for usecase, f in figures["usecases"].items():
                print(
                    f"  {usecase:28s} {f['cases']:4d} cases  pass {f['pass_rate']:.0%}  "
                    f"{f['seconds']:7.2f} s  {f['cases_per_s']:6.2f} cases/s"
                )
            t = figures["total"]
            print(
                f"  {'total':28s} {t['cases']:4d} cases         {t['seconds']:7.2f} s  {t['cases_per_s']:6.2f} cases/s"
            )
    results["machine"]["load_after"] = describe()["load"]
    print(f"\nmachine: {results['machine']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
