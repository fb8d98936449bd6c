"""Retrieval benchmark on SciFact (train queries): quality, latency and ingestion per index backend.

    python bench/retrieval.py [--backend sqlite|postgres|all] [--queries N] [--skip-100k] [--tune]

Method (see docs/benchmarks.md, "Retrieval"):

* data: ../shared/data/scifact (corpus.jsonl, queries.train.jsonl, qrels/train.tsv), one
  chunk per abstract (title + text); the 809 train queries that have judgements;
* embeddings: all-MiniLM-L6-v2 on the CPU through LocalEmbedder; the corpus embeddings
  are cached in bench/.cache/ keyed by a hash of corpus.jsonl and the model name;
* backends: SQLite with sqlite-vec, SQLite with the numpy fallback, PostgreSQL 16 with
  pgvector from pgserver (skipped when not installed);
* quality: nDCG@10 and recall@100 for lexical, dense and hybrid (hybrid_search defaults);
* latency: p50 / p95 over --queries queries of embedding the query (one at a time) plus
  a top-10 hybrid search, sequential, after 20 warm-up queries; also the search's CPU time
  (thread time, which waiting for a core does not inflate), the embedding's wall time and
  the 1-minute load average before and after;
* 100k: a generated collection of 100,000 chunks: the corpus repeated (replica r of
  document d has the text of d followed by the token ``replica<r>`` and the vector of d
  plus Gaussian noise, sigma 0.02 per dimension, renormalised: cosine to the original
  about 0.93), written one document per replace_document call (ingestion chunks/s),
  then the same latency measure;
* batched ingestion (backends with ``replace_documents``, i.e. PostgreSQL): the corpus again
  into a scratch collection, 64 documents per call (one transaction each), then dropped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aerodrome.knowledge.index.base import IndexBackend, IndexedChunk  # noqa: E402
from aerodrome.knowledge.index.sqlite import SQLiteIndex  # noqa: E402
from aerodrome.knowledge.search import FusionSettings, fuse, hybrid_search  # noqa: E402
from aerodrome.providers import local_embeddings  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/scifact"
CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results"
COLLECTION = "scifact"
BIG = 100_000


@dataclass
class SciFact:
    ids: list[str]
    titles: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    raw_hash: str


def load_scifact() -> SciFact:
    raw = (DATA / "corpus.jsonl").read_bytes()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "qrels/train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    for line in (DATA / "queries.train.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["_id"] in qrels:
            queries[row["_id"]] = row["text"]
    key = raw + b"\0" + local_embeddings.MODEL_NAME.encode() + b"\0title+text/v1"
    return SciFact(
        ids=[str(r["_id"]) for r in rows], titles=[r.get("title") or "" for r in rows],
        texts=[r.get("text") or "" for r in rows], queries=queries, qrels=qrels,
        raw_hash=hashlib.sha256(key).hexdigest()[:16],
    )  # fmt: skip


def embed_all(embedder: local_embeddings.LocalEmbedder, texts: list[str], cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache)
    started = time.perf_counter()
    parts = []
    for start in range(0, len(texts), 256):
        parts.append(np.frombuffer(b"".join(embedder.encode(texts[start : start + 256])), dtype="<f4"))
        print(
            f"  embedded {min(start + 256, len(texts))}/{len(texts)} ({time.perf_counter() - started:.0f} s)"
        )
    matrix = np.concatenate(parts).reshape(len(texts), -1).astype(np.float32)
    CACHE.mkdir(exist_ok=True)
    np.save(cache, matrix)
    return matrix


def chunk(document_id: str, title: str, text: str, vector: np.ndarray, collection: str) -> IndexedChunk:
    chunk_id = hashlib.sha256(f"{collection}\0{document_id}\0{0}\0{text}".encode()).hexdigest()[:32]
    embedding = cast(Sequence[float], vector)  # numpy arrays are accepted where floats are
    return IndexedChunk(
        chunk_id, collection, document_id, 0, text, embedding, title=title, uri=f"scifact:{document_id}"
    )


def ingest(backend: IndexBackend, collection: str, docs: Iterator[IndexedChunk], total: int) -> float:
    """Writes every chunk (one document each); returns chunks per second."""
    backend.ensure_collection(
        collection, dims=local_embeddings.DIMENSIONS, embedding_model=local_embeddings.MODEL_NAME
    )
    started = time.perf_counter()
    for n, item in enumerate(docs, start=1):
        backend.replace_document(collection, item.document_id, [item])
        if n % 20000 == 0:
            print(f"  {backend.name}: {n}/{total} chunks written ({time.perf_counter() - started:.0f} s)")
    return total / (time.perf_counter() - started)


def ingest_batched(
    backend: IndexBackend, collection: str, docs: list[IndexedChunk], batch: int = 64
) -> float | None:
    """Chunks per second written ``batch`` documents per ``replace_documents`` call (backends that have it)."""
    replace_documents = getattr(backend, "replace_documents", None)
    if replace_documents is None:
        return None
    backend.ensure_collection(
        collection, dims=local_embeddings.DIMENSIONS, embedding_model=local_embeddings.MODEL_NAME
    )
    started = time.perf_counter()
    for start in range(0, len(docs), batch):
        replace_documents(collection, {item.document_id: [item] for item in docs[start : start + batch]})
    rate = len(docs) / (time.perf_counter() - started)
    backend.drop_collection(collection)
    return rate


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sum(rel / math.log2(i + 2) for i, rel in enumerate(sorted(relevant.values(), reverse=True)[:10]))
    return dcg / ideal if ideal else 0.0


def recall_at_100(ranked: list[str], relevant: dict[str, int]) -> float:
    return len(set(ranked[:100]) & set(relevant)) / len(relevant)


def quality(
    backend: IndexBackend, data: SciFact, qvecs: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    scores: dict[str, list[tuple[float, float]]] = {"lexical": [], "dense": [], "hybrid": []}
    for query_id, text in data.queries.items():
        for mode in scores:
            hits = hybrid_search(backend, [COLLECTION], text, qvecs[query_id], 100, mode=mode)  # type: ignore[arg-type]
            ranked = [h.document_id for h in hits]
            scores[mode].append(
                (ndcg_at_10(ranked, data.qrels[query_id]), recall_at_100(ranked, data.qrels[query_id]))
            )
    return {
        mode: {"ndcg@10": round(statistics.fmean(s[0] for s in values), 4),
               "recall@100": round(statistics.fmean(s[1] for s in values), 4)}
        for mode, values in scores.items()
    }  # fmt: skip


def tune(backend: IndexBackend, data: SciFact, qvecs: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """nDCG@10 of hybrid over a small grid of (rrf_k, dense_weight), from 100-deep lists (train queries)."""
    lists = {
        q: (
            backend.lexical([COLLECTION], t, 100),
            backend.dense([COLLECTION], cast(Sequence[float], qvecs[q]), 100),
        )
        for q, t in data.queries.items()
    }
    grid = []
    for rrf_k in (1, 5, 10, 20, 40, 60, 100):
        for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
            settings = FusionSettings(rrf_k=rrf_k, dense_weight=weight)
            ndcg = statistics.fmean(
                ndcg_at_10([h.document_id for h in fuse(lex, den, settings)], data.qrels[q])
                for q, (lex, den) in lists.items()
            )
            grid.append({"rrf_k": rrf_k, "dense_weight": weight, "ndcg@10": round(ndcg, 4)})
    return sorted(grid, key=lambda row: -row["ndcg@10"])


def latency(
    backend: IndexBackend, collection: str, queries: list[str], embed: Callable[[str], list[float]]
) -> dict[str, Any]:
    """Wall time of embedding + top-10 hybrid search, and the search's own CPU time (this thread).

    On a shared machine wall time includes waiting for a core; the search's CPU time does not
    (SQLite, sqlite-vec and the numpy engine compute in the calling thread), so it is the
    figure to compare across runs. PostgreSQL computes in its server process: its CPU time is
    read from that process (``/proc/<pid>/schedstat``, same machine only) and reported apart.
    The embedding's wall time is reported apart.
    """
    timings, search_cpu, server_cpu, embedding = [], [], [], []
    load_before = os.getloadavg()[0]
    for n, text in enumerate(queries[:20] + queries):
        started = time.perf_counter()
        vector = embed(text)
        embedded, cpu, server = time.perf_counter(), time.thread_time(), server_cpu_ms(backend)
        hybrid_search(backend, [collection], text, vector, 10)
        if n >= 20:
            timings.append((time.perf_counter() - started) * 1000)
            search_cpu.append((time.thread_time() - cpu) * 1000)
            embedding.append((embedded - started) * 1000)
            if server is not None:
                server_cpu.append((server_cpu_ms(backend) or server) - server)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {
        "queries": len(timings),
        "p50_ms": pct(timings, 0.5),
        "p95_ms": pct(timings, 0.95),
        "search_cpu_p50_ms": pct(search_cpu, 0.5),
        "search_cpu_p95_ms": pct(search_cpu, 0.95),
        **(
            {"server_cpu_p50_ms": pct(server_cpu, 0.5), "server_cpu_p95_ms": pct(server_cpu, 0.95)}
            if server_cpu
            else {}
        ),
        "embedding_p50_ms": pct(embedding, 0.5),
        "embedding_p95_ms": pct(embedding, 0.95),
        # the 1-minute load average before and after: wall times move with it on a shared machine
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def server_cpu_ms(backend: IndexBackend) -> float | None:
    """CPU time so far (ms) of the PostgreSQL server process serving this thread (None elsewhere)."""
    if backend.name != "postgres":
        return None
    pid = backend._conn().info.backend_pid  # type: ignore[attr-defined]
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return None  # another machine, or not Linux


def replicas(data: SciFact, vectors: np.ndarray, total: int) -> Iterator[IndexedChunk]:
    rng = np.random.default_rng(20261122)
    for n in range(total):
        d, replica = n % len(data.ids), n // len(data.ids)
        noise = rng.normal(0.0, 0.02, vectors.shape[1])
        noisy = (vectors[d] + noise).astype(np.float32)
        noisy = noisy / np.linalg.norm(noisy)
        yield chunk(
            f"{data.ids[d]}-r{replica}", data.titles[d], f"{data.texts[d]} replica{replica}", noisy, "big"
        )


@contextmanager
def postgres_url() -> Iterator[str | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        print("  postgres: skipped (pip install pgserver for a PostgreSQL with pgvector)")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="aerodrome-bench-pg-") as directory:
        Path(directory).chmod(0o755)
        server = pgserver.get_server(directory, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextmanager
def backends(kind: str) -> Iterator[list[tuple[str, Callable[[str], IndexBackend]]]]:
    with tempfile.TemporaryDirectory(prefix="aerodrome-bench-") as directory:
        made: list[tuple[str, Callable[[str], IndexBackend]]] = []
        if kind in ("sqlite", "all"):
            made.append(("sqlite/sqlite-vec", lambda name: SQLiteIndex(Path(directory) / f"vec-{name}.db")))
            made.append(("sqlite/numpy",
                         lambda name: SQLiteIndex(Path(directory) / f"np-{name}.db", vector_engine="numpy")))  # fmt: skip
        with postgres_url() if kind in ("postgres", "all") else nullcontext_none() as url:
            if url is not None:
                from aerodrome.knowledge.index.postgres import PostgresIndex

                made.append(("postgres/pgvector", lambda name: _pg(url, name, PostgresIndex)))
            yield made


def _pg(url: str, name: str, factory: Callable[[str], IndexBackend]) -> IndexBackend:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS bench_{name}")
        conn.execute(f"CREATE DATABASE bench_{name}")
    return factory(url.replace("/postgres?", f"/bench_{name}?"))


@contextmanager
def nullcontext_none() -> Iterator[None]:
    yield None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--queries", type=int, default=300, help="queries timed for latency")
    parser.add_argument("--skip-100k", action="store_true", help="skip the generated 100k-chunk collection")
    parser.add_argument("--tune", action="store_true", help="print the fusion grid (SciFact train) and exit")
    args = parser.parse_args()
    if not (DATA / "corpus.jsonl").exists():
        print(f"SciFact not found at {DATA}: nothing to measure")
        return 0
    if not local_embeddings.is_available():
        print("local embeddings unavailable (pip install 'aerodrome[local]'): nothing to measure")
        return 0
    data = load_scifact()
    embedder = local_embeddings.LocalEmbedder()
    docs = [f"{t}\n{x}".strip() for t, x in zip(data.titles, data.texts, strict=True)]
    vectors = embed_all(embedder, docs, CACHE / f"scifact-corpus-{data.raw_hash}.npy")
    query_ids = list(data.queries)
    qmatrix = embed_all(
        embedder, [data.queries[q] for q in query_ids], CACHE / f"scifact-train-{data.raw_hash}.npy"
    )
    qvecs = {q: qmatrix[i] for i, q in enumerate(query_ids)}
    texts = [data.queries[q] for q in query_ids][: args.queries]

    def embed(text: str) -> list[float]:
        return local_embeddings.as_floats(embedder.encode([text])[0])

    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "corpus_chunks": len(data.ids), "train_queries": len(query_ids), "fusion": FusionSettings().__repr__(),
        "backends": {},
    }  # fmt: skip
    with backends(args.backend) as made:
        for label, factory in made:
            print(f"== {label}")
            backend = factory("scifact")
            ingest_rate = ingest(backend, COLLECTION, (chunk(i, t, x, v, COLLECTION) for i, t, x, v in
                                 zip(data.ids, data.titles, data.texts, vectors, strict=True)), len(data.ids))  # fmt: skip
            if args.tune:
                for row in tune(backend, data, qvecs)[:15]:
                    print("  ", row)
                return 0
            result: dict[str, Any] = {"ingest_chunks_per_s": round(ingest_rate, 1)}
            batched = ingest_batched(backend, "batched", [chunk(i, t, x, v, "batched") for i, t, x, v in
                                     zip(data.ids, data.titles, data.texts, vectors, strict=True)])  # fmt: skip
            if batched is not None:
                result["ingest_batched_chunks_per_s"] = round(batched, 1)
            result["quality"] = quality(backend, data, qvecs)
            result["latency_5k"] = latency(backend, COLLECTION, texts, embed)
            print(f"  {json.dumps(result)}")
            backend.close()
            if not args.skip_100k:
                big = factory("big")
                result["ingest_100k_chunks_per_s"] = round(
                    ingest(big, "big", replicas(data, vectors, BIG), BIG), 1
                )
                result["latency_100k"] = latency(big, "big", texts, embed)
                print(f"  100k: {result['ingest_100k_chunks_per_s']} chunks/s, {result['latency_100k']}")
                big.close()
            report["backends"][label] = result
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.backend == "all" else f"-{args.backend}"
    out = RESULTS / f"retrieval-{report['date']}{suffix}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    print("\n| backend | mode | nDCG@10 | recall@100 |")
    print("|---|---|---|---|")
    for label, result in report["backends"].items():
        for mode, values in result["quality"].items():
            print(f"| {label} | {mode} | {values['ndcg@10']:.4f} | {values['recall@100']:.4f} |")
    print(
        "\n| backend | ingest chunks/s (5k) | p50 / p95 ms (5k) | ingest chunks/s (100k) | p50 / p95 ms (100k) |"
    )
    print("|---|---|---|---|---|")
    for label, r in report["backends"].items():
        big = r.get("latency_100k")
        big_text = f"{big['p50_ms']} / {big['p95_ms']}" if big else "-"
        print(
            f"| {label} | {r['ingest_chunks_per_s']:.0f} | {r['latency_5k']['p50_ms']} / {r['latency_5k']['p95_ms']} |"
            f" {r.get('ingest_100k_chunks_per_s', '-')} | {big_text} |"
        )
    print(
        "\n| backend | search CPU p50 / p95 ms (5k) | (100k) | server CPU p50 / p95 ms (5k) | (100k)"
        " | embedding p50 / p95 ms | load average (5k) | (100k) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in report["backends"].items():
        cells = []
        for prefix in ("search_cpu", "server_cpu"):
            for key in ("latency_5k", "latency_100k"):
                lat = r.get(key)
                has = lat is not None and f"{prefix}_p50_ms" in lat
                cells.append(f"{lat[f'{prefix}_p50_ms']} / {lat[f'{prefix}_p95_ms']}" if has else "-")
        small, big = r["latency_5k"], r.get("latency_100k")
        print(
            f"| {label} | {' | '.join(cells)} | {small['embedding_p50_ms']} / {small['embedding_p95_ms']} |"
            f" {small['load_avg_1min']} | {big['load_avg_1min'] if big else '-'} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
