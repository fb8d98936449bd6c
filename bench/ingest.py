"""Ingestion throughput and re-sync cost on SciFact, through the real pipeline.

    python bench/ingest.py [--limit N] [--index sqlite]

Builds a throw-away workspace whose collection reads ../shared/data/scifact/corpus.jsonl with the
folder connector, then runs the same sync the CLI and the API run (parse, chunk, embed with the
local all-MiniLM-L6-v2 on the CPU, index, quality report) twice: the first sync ingests everything,
the second finds every document unchanged. Prints documents/s of the first, the seconds of the
second and their ratio (target: re-sync ≤ 5% of the first ingest), and writes
bench/results/ingest-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=0, help="first N documents only (0: all 5,183)")
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

    with tempfile.TemporaryDirectory() as tmp:
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
            f"    sources: [{{kind: folder, path: {corpus}}}]\n",
            encoding="utf-8",
        )
        cfg = load_config(cfg_path)
        engine = open_database(cfg)
        store.apply_config(engine, cfg)
        catalog = build_catalog(cfg, engine)
        svc = KnowledgeService(engine, cfg, lambda: catalog)
        started = time.perf_counter()
        first = svc.sync("scifact")
        first_s = time.perf_counter() - started
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
        "documents": docs,
        "chunks": first["chunks_embedded"],
        "first_sync_s": round(first_s, 2),
        "documents_per_s": round(docs / first_s, 1),
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
        f"({100 * second_s / first_s:.1f}% of the first ingest; target ≤ 5%)"
    )
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.limit}" if args.limit else ""
    (RESULTS / f"ingest-{report['date']}{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
