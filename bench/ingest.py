"""Ingestion throughput and re-sync cost on SciFact, through the real pipeline.

    python bench/ingest.py [--limit N] [--index sqlite|postgres]

Builds a throw-away workspace whose collection reads ../shared/data/scifact/corpus.jsonl with the
folder connector, then runs the same sync the CLI and the API run (parse, chunk, embed with the
local all-MiniLM-L6-v2 on the CPU, index, quality report) twice: the first sync ingests everything,
the second finds every document unchanged. Prints documents/s of the first, the seconds of the
second and their ratio (target: re-sync ≤ 5% of the first ingest), and writes
bench/results/ingest-<date>.json. Also the time spent in the index's write calls (the
``replace_document``/``replace_documents`` sync makes) and the chunks per second they write.
``--index postgres`` puts the index in a scratch PostgreSQL with pgvector from pgserver.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=0, help="first N documents only (0: all 5,183)")
    parser.add_argument("--index", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    if not SCIFACT.exists():
        print(f"SciFact is not at {SCIFACT}; nothing to measure", file=sys.stderr)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from aerodrome.catalog.store import build_catalog
    from aerodrome.config import load_config
    from aerodrome.knowledge import collections as store
    from aerodrome.knowledge.service import KnowledgeService
    from aerodrome.runtime import open_database

    with tempfile.TemporaryDirectory() as tmp, index_url(args.index, tmp) as url:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        source = corpus / "corpus.jsonl"
        if args.limit:
            with SCIFACT.open(encoding="utf-8") as fh:
                source.write_text("".join(line for _, line in zip(range(args.limit), fh, strict=False)))
        else:
            shutil.copyfile(
                SCIFACT, source
            )  # a copy: the folder connector refuses links that leave the folder
        cfg_path = Path(tmp) / "aerodrome.yaml"
        cfg_path.write_text(
            "database: {url: sqlite:///bench.db}\n"
            "collections:\n"
            "  - name: scifact\n"
            "    data_class: public\n"
            '    readers: {departments: ["*"]}\n'
            f"    sources: [{{kind: folder, path: {corpus}}}]\n"
            + (f"knowledge: {{index: postgres, index_url: '{url}'}}\n" if url else ""),
            encoding="utf-8",
        )
        cfg = load_config(cfg_path)
        engine = open_database(cfg)
        store.apply_config(engine, cfg)
        catalog = build_catalog(cfg, engine)
        svc = KnowledgeService(engine, cfg, lambda: catalog)
        writes = timed_writes(svc.index)
        started = time.perf_counter()
        first = svc.sync("scifact")
        first_s = time.perf_counter() - started
        write_s, write_calls = writes["seconds"], writes["calls"]
        started = time.perf_counter()
        second = svc.sync("scifact")
        second_s = time.perf_counter() - started
        svc.close()
        engine.dispose()
    docs = first["documents"]
    if first["errors"]:
        print(f"{first['errors']} documents failed: {first['errors_detail'][:3]}", file=sys.stderr)
    report = {
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "index": args.index,
        "documents": docs,
        "chunks": first["chunks_embedded"],
        "first_sync_s": round(first_s, 2),
        "documents_per_s": round(docs / first_s, 1),
        "index_write_s": round(write_s, 2),
        "index_write_calls": write_calls,
        "index_write_chunks_per_s": round(first["chunks_embedded"] / write_s, 1) if write_s else None,
        "resync_s": round(second_s, 2),
        "resync_unchanged": second["unchanged"],
        "resync_chunks_embedded": second["chunks_embedded"],
        "resync_ratio": round(second_s / first_s, 4),
        "quality_summary": first["quality_summary"],
    }
    print(json.dumps(report, indent=2))
    print(
        f"\nfirst ingest: {docs} documents, {first['chunks_embedded']} chunks in {first_s:.1f} s "
        f"({docs / first_s:.1f} documents/s)\nre-sync of the unchanged corpus: {second_s:.2f} s "
        f"({100 * second_s / first_s:.1f}% of the first ingest; target ≤ 5%)\n"
        f"index writes ({args.index}): {write_s:.1f} s in {write_calls} calls "
        f"({report['index_write_chunks_per_s']} chunks/s)"
    )
    RESULTS.mkdir(exist_ok=True)
    suffix = (f"-{args.limit}" if args.limit else "") + ("-postgres" if args.index == "postgres" else "")
    (RESULTS / f"ingest-{report['date']}{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


def timed_writes(index: Any) -> dict[str, Any]:
    """Wraps the index's write methods (on the instance) to add up their wall time and calls.

    Only the outermost call counts (``replace_document`` may call ``replace_documents``).
    """
    totals: dict[str, Any] = {"seconds": 0.0, "calls": 0, "depth": 0}

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            totals["depth"] += 1
            try:
                return method(*args, **kwargs)
            finally:
                totals["depth"] -= 1
                if totals["depth"] == 0:
                    totals["seconds"] += time.perf_counter() - started
                    totals["calls"] += 1

        return call

    for name in ("replace_document", "replace_documents"):
        if hasattr(index, name):
            setattr(index, name, timed(getattr(index, name)))
    return totals


@contextlib.contextmanager
def index_url(kind: str, tmp: str) -> Iterator[str | None]:
    """None for SQLite; a scratch PostgreSQL (pgserver, with pgvector) database URL otherwise."""
    if kind != "postgres":
        yield None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    Path(tmp).chmod(0o755)  # pgserver's server may run as another user (when started by root)
    directory = Path(tmp) / "pg"
    directory.mkdir()
    directory.chmod(0o755)
    server = pgserver.get_server(directory, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
