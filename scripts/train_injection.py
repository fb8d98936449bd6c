"""Train the prompt-injection classifier shipped as src/aerodrome/guardrails/injection_model.json.

    python scripts/train_injection.py [--data DIR] [--out PATH] [--sample N] [--folds K]

Reads ``<data>/train.csv`` (deepset/prompt-injections, ``text,label``, 1 = injection) to fit the
model and to choose its settings: the regularisation strength C is picked by K-fold cross-validated
F1 on train, and so is the decision threshold (the out-of-fold probabilities are computed by the
very inference code the package runs, windows included). ``val.csv``, when present, is only scored
and printed at the end; it never influences the model.

Extra negatives: deepset's benign texts are all short questions, so a model trained on it alone
calls almost any prose an injection (98% of SciFact abstracts, and every window of a long
document). The first 512 characters of the first ``--negatives-count`` (400) documents of
``../shared/data/scifact/corpus.jsonl`` join every training fold as benign examples; CV F1 and the
threshold are still measured on deepset texts only. ``--negatives none`` trains on deepset alone.

Features: character 3..5-grams within word boundaries (``aerodrome.guardrails.injection.char_ngrams``)
weighted by sublinear TF-IDF with L2 normalisation; model: L2 logistic regression, balanced class
weights. Deterministic: fixed fold seed, a deterministic solver, sorted vocabulary.

Dev-only dependency: scikit-learn (``pip install scikit-learn``); the runtime needs none of it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aerodrome.guardrails.injection import InjectionModel, char_ngrams, normalize  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "prompt_injection" / "deepset"
DEFAULT_NEGATIVES = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
DEFAULT_OUT = ROOT / "src" / "aerodrome" / "guardrails" / "injection_model.json"
SEED = 0
NEGATIVE_CHARS = 512  # benign prose examples: the first 512 characters of each document
GRID_C = (3.0, 10.0, 30.0, 100.0)
GRID_MIN_DF = (2,)


def read_split(path: Path) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    labels: list[int] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, labels


def analyzer(doc: str) -> list[str]:
    return char_ngrams(normalize(doc))


def fit(texts: Sequence[str], labels: Sequence[int], c: float, min_df: int) -> dict[str, Any]:
    """Fit TF-IDF + logistic regression and export it in the package's JSON form."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, min_df=min_df, dtype=np.float64)
    x = vec.fit_transform(texts)
    clf = LogisticRegression(
        C=c, class_weight="balanced", solver="liblinear", max_iter=10_000, random_state=SEED
    )
    clf.fit(x, np.asarray(labels))
    vocab: dict[str, int] = vec.vocabulary_
    terms = sorted(vocab)
    order = [vocab[t] for t in terms]
    return {
        "terms": terms,
        "idf": [round(float(v), 4) for v in vec.idf_[order]],
        "coef": [float(f"{v:.5g}") for v in clf.coef_[0][order]],
        "intercept": float(f"{float(clf.intercept_[0]):.6g}"),
        "threshold": 0.5,
    }


def f1_at(probs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    pred = probs >= threshold
    tp = int(np.sum(pred & (labels == 1)))
    fp = int(np.sum(pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_threshold(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold with the best F1 (ties: the one nearest 0.5) on a 0.01 grid."""
    candidates = [round(t, 2) for t in np.arange(0.05, 0.96, 0.01)]
    scored = [(f1_at(probs, labels, t)[2], -abs(t - 0.5), t) for t in candidates]
    f1, _, t = max(scored)
    return float(t), float(f1)


def read_negatives(path: Path, count: int) -> list[str]:
    """Benign prose: the first ``NEGATIVE_CHARS`` characters of each of the first ``count`` documents of a BEIR corpus."""
    windows: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= count:
                break
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc['text']}".strip(". ")
            windows.append(text[:NEGATIVE_CHARS])
    return windows


def out_of_fold(
    texts: list[str], labels: list[int], negatives: list[str], c: float, min_df: int, folds: int
) -> np.ndarray:
    """Out-of-fold probabilities of the deepset texts; the extra negatives join every training fold."""
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros(len(texts))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train_idx, test_idx in splitter.split(np.zeros(len(labels)), labels):
        fold_texts = [texts[i] for i in train_idx] + negatives
        fold_labels = [labels[i] for i in train_idx] + [0] * len(negatives)
        model = InjectionModel.from_dict(fit(fold_texts, fold_labels, c, min_df))
        for i in test_idx:
            probs[i] = model.score(texts[i])
    return probs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.csv (and val.csv)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sample", type=int, default=0, help="train on the first N rows only (tests)")
    parser.add_argument(
        "--negatives",
        type=Path,
        default=DEFAULT_NEGATIVES,
        help="benign prose (BEIR corpus.jsonl); 'none' to skip",
    )
    parser.add_argument("--negatives-count", type=int, default=400, help="documents read from --negatives")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--c", type=float, action="append", help="C values to try (default: a grid)")
    parser.add_argument(
        "--min-df", type=int, action="append", help="min_df values to try (default: 2, keeps the file small)"
    )
    args = parser.parse_args(argv)

    texts, labels = read_split(args.data / "train.csv")
    if args.sample:
        texts, labels = texts[: args.sample], labels[: args.sample]
    y = np.asarray(labels)
    print(f"train: {len(texts)} texts, {int(y.sum())} injections")

    negatives: list[str] = []
    if str(args.negatives) != "none":
        if not args.negatives.exists():
            parser.error(f"{args.negatives} not found (pass --negatives none to train on deepset alone)")
        negatives = read_negatives(args.negatives, args.negatives_count)
        print(f"extra negatives: {len(negatives)} benign prose windows from {args.negatives}")

    grid = [(c, m) for c in (args.c or GRID_C) for m in (args.min_df or GRID_MIN_DF)]
    results = []
    for c, min_df in grid:
        probs = out_of_fold(texts, labels, negatives, c, min_df, args.folds)
        threshold, f1 = best_threshold(probs, y)
        results.append((f1, -c, -min_df, c, min_df, threshold))
        print(f"  cv C={c:<6g} min_df={min_df}  F1={f1:.4f} at threshold {threshold:.2f}")
    f1, _, _, c, min_df, threshold = max(results)
    print(f"chosen: C={c:g} min_df={min_df} threshold={threshold:.2f} (cv F1 {f1:.4f})")

    exported = fit(texts + negatives, labels + [0] * len(negatives), c, min_df)
    exported["threshold"] = threshold
    exported["meta"] = {
        "features": "char 3-5-grams within word boundaries, sublinear tf-idf, l2",
        "classifier": "logistic regression (liblinear, l2, balanced)",
        "C": c,
        "min_df": min_df,
        "cv_folds": args.folds,
        "cv_f1": round(f1, 4),
        "train_rows": len(texts),
        "data": "deepset/prompt-injections train split (Apache-2.0)",
        "extra_negatives": (
            f"{len(negatives)} windows of the first {args.negatives_count} documents of {args.negatives.name}"
            f" ({args.negatives.parent.name})"
            if negatives
            else None
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(exported, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(exported['terms'])} n-grams)")

    val_path = args.data / "val.csv"
    if val_path.exists():
        model = InjectionModel.from_dict(exported)
        vt, vl = read_split(val_path)
        vp = np.asarray([model.score(t) for t in vt])
        p, r, f = f1_at(vp, np.asarray(vl), threshold)
        print(f"val (report only): {len(vt)} texts  precision={p:.4f} recall={r:.4f} F1={f:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
