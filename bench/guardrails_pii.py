"""PII guardrail benchmark: precision / recall / F1 per entity type, and time per KB.

    python bench/guardrails_pii.py [--engine presidio|regex] [--min-score 0.5] [--show-errors TYPE]

Method (see docs/benchmarks.md, "Guardrails"):

* data: ../shared/data/pii/*.json (Presidio's synthetic sets, MIT): records with
  ``full_text`` and gold ``spans``;
* types: gold names mapped to the guardrail's (GPE, ADDRESS, STREET_ADDRESS → LOCATION;
  DOMAIN_NAME → URL); the six structured types are held to P and R ≥ 0.95, the others
  are printed for information (names, places and organisations need a spaCy NER model,
  which is used only when installed);
* matching, span level: a prediction is a true positive when a gold span of the same type
  overlaps it by at least half of the longer of the two ("overlap"); "exact" counts only
  identical (start, end). Each gold span is matched at most once;
* speed: every text checked once after a warm-up; ms per KB = total check time / total KB;
  also a 10 KB text made of the records joined.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aerodrome.guardrails import pii as pii_module  # noqa: E402
from aerodrome.guardrails.pii import STRUCTURED_ENTITIES, PiiConfig, PiiGuardrail  # noqa: E402

DATA = ROOT.parent / "shared/data/pii"
RESULTS = Path(__file__).resolve().parent / "results"
TYPE_MAP = {"GPE": "LOCATION", "ADDRESS": "LOCATION", "STREET_ADDRESS": "LOCATION", "DOMAIN_NAME": "URL"}


def load_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(DATA.glob("*.json")):
        records.extend(json.loads(path.read_text(encoding="utf-8")))
    return records


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter > 0 and inter >= 0.5 * max(a[1] - a[0], b[1] - b[0])


def evaluate(guard: PiiGuardrail, records: list[dict[str, Any]], show: str | None) -> dict[str, Any]:
    counts: dict[str, dict[str, dict[str, int]]] = {
        mode: defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0}) for mode in ("overlap", "exact")
    }
    elapsed = 0.0
    size = 0
    for rec in records:
        text = rec["full_text"]
        gold = [
            (TYPE_MAP.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"])
            for s in rec["spans"]
        ]
        started = time.perf_counter()
        found = guard.findings(text)
        elapsed += time.perf_counter() - started
        size += len(text.encode("utf-8"))
        pred = [(f.kind, f.start or 0, f.end or 0) for f in found]
        for mode in ("overlap", "exact"):
            unmatched = list(gold)
            for kind, start, end in pred:
                hit = next(
                    (
                        g
                        for g in unmatched
                        if g[0] == kind
                        and (
                            (g[1], g[2]) == (start, end)
                            if mode == "exact"
                            else _overlaps((g[1], g[2]), (start, end))
                        )
                    ),
                    None,
                )
                if hit is None:
                    counts[mode][kind]["fp"] += 1
                    if show == kind and mode == "overlap":
                        print(f"  FP {kind} {text[start:end]!r} in {text!r}")
                else:
                    unmatched.remove(hit)
                    counts[mode][kind]["tp"] += 1
            for kind, start, end in unmatched:
                counts[mode][kind]["fn"] += 1
                if show == kind and mode == "overlap":
                    print(
                        f"  FN {kind} {text[start:end]!r} in {text!r} (found {[(k, text[s:e]) for k, s, e in pred]})"
                    )
    return {
        "counts": counts,
        "ms_per_kb": elapsed * 1000 / (size / 1024),
        "ms_per_check": elapsed * 1000 / len(records),
        "kb": size / 1024,
    }


def prf(c: dict[str, int]) -> dict[str, float | int]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f1, 4),
        "support": c["tp"] + c["fn"],
        **c,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("presidio-analyzer", "spacy", "tldextract", "regex"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["presidio", "regex"], default=None)
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--show-errors", default=None, help="print false positives / negatives of a type")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir() or not any(DATA.glob("*.json")):
        print(f"SKIP: no PII data set at {DATA}")
        return 0
    if args.engine == "regex":
        pii_module.presidio_available = lambda: False
    records = load_records()
    guard = PiiGuardrail(PiiConfig(min_score=args.min_score))
    started = time.perf_counter()
    guard.warm()
    build_s = time.perf_counter() - started
    guard.findings(records[0]["full_text"])  # warm-up
    result = evaluate(guard, records, args.show_errors)

    big = "\n".join(r["full_text"] for r in records)[:10240]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        guard.check(big)
        times.append(time.perf_counter() - started)
    ms_per_kb_10k = min(times) * 1000 / (len(big.encode("utf-8")) / 1024)

    print(f"engine {guard.engine}; {len(records)} records, {result['kb']:.0f} KB; build {build_s:.2f} s")
    report: dict[str, Any] = {}
    for mode in ("overlap", "exact"):
        counts = result["counts"][mode]
        print(f"\n[{mode} match] {'type':<20} {'P':>6} {'R':>6} {'F1':>6} {'support':>8}")
        rows = {k: prf(v) for k, v in counts.items()}
        ordered = [k for k in STRUCTURED_ENTITIES if k in rows] + sorted(
            k for k in rows if k not in STRUCTURED_ENTITIES
        )
        for kind in ordered:
            r = rows[kind]
            mark = "*" if kind in STRUCTURED_ENTITIES else " "
            print(
                f"{mark}{'':13} {kind:<20} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f} {r['support']:>8}"
            )
        total: dict[str, int] = {"tp": 0, "fp": 0, "fn": 0}
        structured: dict[str, int] = {"tp": 0, "fp": 0, "fn": 0}
        for kind, c in counts.items():
            for key in total:
                total[key] += c[key]
                if kind in STRUCTURED_ENTITIES:
                    structured[key] += c[key]
        s, t = prf(structured), prf(total)
        print(
            f"{'':14} {'structured (6)':<20} {s['precision']:>6.3f} {s['recall']:>6.3f} {s['f1']:>6.3f} {s['support']:>8}"
        )
        print(
            f"{'':14} {'overall':<20} {t['precision']:>6.3f} {t['recall']:>6.3f} {t['f1']:>6.3f} {t['support']:>8}"
        )
        report[mode] = {"per_type": rows, "structured": s, "overall": t}
    print(
        f"\ntime: {ms_per_kb_10k:.3f} ms/KB on a 10 KB text; over the records (mean "
        f"{result['kb'] * 1024 / len(records):.0f} bytes) {result['ms_per_kb']:.3f} ms/KB, "
        f"{result['ms_per_check']:.3f} ms per check"
    )
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        suffix = "" if guard.engine == "presidio" else f"-{guard.engine}"
        out = RESULTS / f"guardrails-pii-{dt.date.today().isoformat()}{suffix}.json"
        payload = {
            "engine": guard.engine,
            "min_score": args.min_score,
            "records": len(records),
            "build_s": round(build_s, 3),
            "ms_per_kb": round(result["ms_per_kb"], 4),
            "ms_per_check": round(result["ms_per_check"], 4),
            "ms_per_kb_10k_text": round(ms_per_kb_10k, 4),
            "matching": "overlap: same type and overlap >= 50% of the longer span; exact: same start and end",
            "python": platform.python_version(),
            "packages": _versions(),
            **report,
        }
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
