"""Drift benchmark: runs until a generated shift of inputs is detected, and the false-alarm rate.

    python bench/drift.py [--rate 200] [--repeats 20] [--windows 400] [--out bench/results/drift.json]

Method (see docs/benchmarks.md, "Drift"):

* texts: generated employee questions on two topics, HR (leave, pay, expenses) and IT (laptops,
  VPN, accounts), from templates with random slots; and "long HR" questions (an HR question
  after a sentence or two of context, about 2.5x the characters). Embedded once with the local
  all-MiniLM-L6-v2, exactly as the profiler embeds inputs;
* baseline: 960 HR runs over 48 hours (20 an hour), as hourly profiles;
* the tests are those of aerodrome.monitoring.drift with the use-case defaults
  (false_alarm_rate 0.01 split over the 9 default features, so each test runs at 0.0011;
  min_runs 100; min_relative_change 0.2); only the input features are simulated
  (input_centroid, input_length);
* false alarms: --windows independent windows of --rate unshifted HR runs (drawn from texts
  not in the baseline), share of windows where each test fires;
* detection: traffic of --rate runs an hour, a trailing window of one hour evaluated every 10
  runs; at the change point the inputs switch (all IT, 30% IT, 10% IT, long HR); runs after
  the change until the first detection, median and range over --repeats draws.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aerodrome.knowledge.embedding import LocalEmbedding
from aerodrome.monitoring import drift
from aerodrome.monitoring.profiles import Profile, projection

ALPHA = 0.01 / 9  # the default false_alarm_rate split over the 9 default features
MIN_RUNS = 100
MIN_CHANGE = 0.2
STEP = 10

HR_FORMS = [
    "How many days of {a} leave do I get {b}?",
    "Can I carry over unused {a} leave {b}?",
    "Who approves my {a} leave request {b}?",
    "Is my {c} paid {b}?",
    "How do I claim {d} {b}?",
    "What is the policy on {a} leave {b}?",
    "When is the {c} paid {b}?",
    "Can my manager refuse my {a} leave {b}?",
]
IT_FORMS = [
    "My {e} keeps {f}, how do I fix it?",
    "How do I reset my {g} {b}?",
    "The {e} is {f} since the update",
    "Who can repair my {e}? It is {f}",
    "I cannot log in to {h} {b}",
    "How do I install {h} on my {e}?",
]
SLOTS = {
    "a": ["parental", "sick", "annual", "unpaid", "compassionate", "study", "sabbatical"],
    "b": ["this year", "after my probation", "as a part-time employee", "in my first year", "next month", ""],
    "c": ["overtime", "holiday bonus", "thirteenth month", "night shift allowance", "salary increase"],
    "d": ["travel expenses", "a train ticket", "a hotel night", "my phone bill", "a training course"],
    "e": ["laptop", "docking station", "second screen", "headset", "phone", "keyboard"],
    "f": ["crashing", "disconnecting", "frozen", "very slow", "not detected", "overheating"],
    "g": ["password", "VPN token", "two-factor app", "email account", "badge"],
    "h": ["the VPN", "Outlook", "the expense tool", "the intranet", "Teams", "the HR portal"],
}
CONTEXT = [
    "I joined the company in March and work four days a week in the Lyon office.",
    "My team lead is on holiday and nobody else in the department knows the answer.",
    "I read the intranet page twice but it seems to contradict what my colleague said.",
    "This concerns my partner's due date, which the doctor moved by three weeks.",
]


def texts(kind: str, n: int, rng: random.Random) -> list[str]:
    forms = IT_FORMS if kind == "it" else HR_FORMS
    out = []
    for _ in range(n):
        text = rng.choice(forms).format(**{k: rng.choice(v) for k, v in SLOTS.items()}).replace(" ?", "?")
        if kind == "long":
            text = " ".join(rng.sample(CONTEXT, 2)) + " " + text
        out.append(text)
    return out


BASIS = projection(384)


def profile(vectors: np.ndarray, lengths: np.ndarray) -> Profile:
    p = Profile()
    for v, n in zip(vectors, lengths, strict=True):
        p.observe(
            input_text="x" * int(n),
            output_text=None,
            answered=True,
            refused=False,
            embedding=v,
            model="m",
            basis=BASIS,
        )
    return p


def fires(hours: list[Profile], window: Profile) -> dict[str, bool]:
    c = drift.centroid_test(hours, window, ALPHA, MIN_RUNS)
    ln = drift.length_test("input_length", hours, window, ALPHA, MIN_RUNS, MIN_CHANGE)
    return {"input_centroid": c.status == "drifted", "input_length": ln.status == "drifted"}


def hot_path_us(n: int = 20_000) -> float:
    """Microseconds the request path spends handing one run to the profiler (a queue put)."""
    import tempfile
    from datetime import UTC, datetime

    from aerodrome.monitoring.profiler import Observation, Profiler
    from aerodrome.storage import migrate
    from aerodrome.storage.engine import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/p.db")
        migrate.upgrade(engine)
        profiler = Profiler(engine, embedder=None, flush_interval_s=0.5)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        for i in range(n):
            profiler.observe(Observation("uc", "hr", now, f"question {i}", "answer", True, embed=True))
        took = time.perf_counter() - t0
        profiler.close()
        engine.dispose()
    return 1e6 * took / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=200, help="runs per hour (the trailing window)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="an .npz of the embeddings (written if absent)")
    args = ap.parse_args()
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    pools = {"hr": texts("hr", 2000, rng), "it": texts("it", 600, rng), "long": texts("long", 600, rng)}
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.exists():
        cached = np.load(args.cache)
        vec = {k: cached[k] for k in pools}
    else:
        embedder = LocalEmbedding()
        vec = {k: np.asarray(embedder.embed(v)) for k, v in pools.items()}
        if args.cache is not None:
            np.savez(args.cache, **vec)
    embed_s = time.perf_counter() - t0
    embedded_now = args.cache is None or embed_s > 1.0
    lens = {k: np.asarray([len(t) for t in v]) for k, v in pools.items()}
    n_texts = sum(len(v) for v in pools.values())
    print(f"embedded {n_texts} texts in {embed_s:.1f} s ({1000 * embed_s / n_texts:.1f} ms each)")

    # baseline: the first 960 HR texts, 20 an hour over 48 hours; the rest is unshifted live traffic
    hours = [profile(vec["hr"][i : i + 20], lens["hr"][i : i + 20]) for i in range(0, 960, 20)]
    live = np.arange(960, len(pools["hr"]))

    t0 = time.perf_counter()
    alarms = {"input_centroid": 0, "input_length": 0, "any": 0}
    for _ in range(args.windows):
        idx = nrng.choice(live, args.rate, replace=False)
        f = fires(hours, profile(vec["hr"][idx], lens["hr"][idx]))
        for k, v in f.items():
            alarms[k] += v
        alarms["any"] += any(f.values())
    per_test_ms = 1000 * (time.perf_counter() - t0) / args.windows
    far = {k: v / args.windows for k, v in alarms.items()}
    print(
        f"false alarms on {args.windows} unshifted windows of {args.rate} runs: {far} (tests at {ALPHA:.4f} each)"
    )

    scenarios = {
        "all IT": ("it", 1.0),
        "30% IT": ("it", 0.3),
        "10% IT": ("it", 0.1),
        "long HR (2.5x chars)": ("long", 1.0),
    }
    detection: dict[str, Any] = {}
    for name, (kind, share) in scenarios.items():
        found: list[int | None] = []
        by: dict[str, int] = {"input_centroid": 0, "input_length": 0}  # which test fired at detection
        for _ in range(args.repeats):
            before = nrng.choice(live, args.rate, replace=False)  # the hour before the change
            after_n = 3 * args.rate
            shifted = nrng.random(after_n) < share
            after_hr = nrng.choice(live, after_n)
            after_new = nrng.choice(len(pools[kind]), after_n)
            v_after = np.where(shifted[:, None], vec[kind][after_new], vec["hr"][after_hr])
            l_after = np.where(shifted, lens[kind][after_new], lens["hr"][after_hr])
            v_all = np.vstack([vec["hr"][before], v_after])
            l_all = np.concatenate([lens["hr"][before], l_after])
            hit: int | None = None
            for k in range(STEP, after_n + 1, STEP):
                end = args.rate + k
                win = slice(end - args.rate, end)
                f = fires(hours, profile(v_all[win], l_all[win]))
                if any(f.values()):
                    hit = k
                    for feat, on in f.items():
                        by[feat] += on
                    break
            found.append(hit)
        got = [k for k in found if k is not None]
        detection[name] = {
            "detected": f"{len(got)}/{len(found)}",
            "runs_median": statistics.median(got) if got else None,
            "runs_min": min(got) if got else None,
            "runs_max": max(got) if got else None,
            "fired_at_detection": by,
        }
        print(
            f"{name:>22}: detected {len(got)}/{len(found)}; runs after the change: median "
            f"{detection[name]['runs_median']}, range {detection[name]['runs_min']}-{detection[name]['runs_max']}"
        )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rate_per_hour": args.rate,
        "alpha_per_test": ALPHA,
        "false_alarm_rate": far,
        "windows": args.windows,
        "detection": detection,
        "repeats": args.repeats,
        "test_ms": round(per_test_ms, 3),
        "embed_ms_per_text": round(1000 * embed_s / n_texts, 2) if embedded_now else None,
        "observe_us": round(hot_path_us(), 2),
    }
    print(
        f"one evaluation of both tests: {per_test_ms:.2f} ms; handing a run to the profiler: {result['observe_us']} µs"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
