"""Sync writes each embedding batch with one ``replace_documents`` call, and a document the index
refuses is reported alone while the rest of its batch is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from aerodrome.config import load_config
from aerodrome.knowledge import collections as store
from aerodrome.knowledge.index.base import DimensionMismatch, IndexedChunk
from aerodrome.knowledge.index.sqlite import SQLiteIndex
from aerodrome.knowledge.sync import CollectionSync
from aerodrome.runtime import open_database


class FakeEmbedder:
    model_id = "fake-4d"
    dims = 4

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return [[1.0, float(len(t) % 7), 0.5, 0.0] for t in texts]


class RecordingIndex(SQLiteIndex):
    """SQLite index that records its write calls and refuses documents whose id contains "bad"."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, vector_engine="numpy")
        self.calls: list[tuple[str, list[str]]] = []

    def replace_documents(self, collection: str, documents: Mapping[str, Sequence[IndexedChunk]]) -> None:
        self.calls.append(("batch", list(documents)))
        if any("bad" in document_id for document_id in documents):
            raise DimensionMismatch("refused by the test")
        super().replace_documents(collection, documents)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Any, Any, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(10):
        (docs / f"doc{i}.md").write_text(f"# Doc {i}\n\nPolicy number {i} says something about topic {i}.\n")
    cfg_path = tmp_path / "aerodrome.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path}/k.db"},
                "collections": [
                    {
                        "name": "kb",
                        "data_class": "public",
                        "readers": {"departments": ["*"]},
                        "sources": [{"kind": "folder", "path": str(docs)}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)
    engine = open_database(cfg)
    store.apply_config(engine, cfg)
    return cfg, engine, docs


def _sync(cfg: Any, engine: Any, index: RecordingIndex, embedder: FakeEmbedder, batch: int = 4) -> Any:
    spec = next(c for c in cfg.collections if c.name == "kb")
    return CollectionSync(engine, index, "kb", spec, embedder, batch=batch).run()


def test_batches_are_written_in_one_call_each(setup: tuple[Any, Any, Path], tmp_path: Path) -> None:
    cfg, engine, docs = setup
    index = RecordingIndex(tmp_path / "index.db")
    embedder = FakeEmbedder()
    result = _sync(cfg, engine, index, embedder)
    assert result.counts["added"] == 10 and result.counts["errors"] == 0
    assert [len(ids) for _, ids in index.calls] == [4, 4, 2]  # one call per embedding batch of 4 chunks
    assert index.count("kb") == 10
    # unchanged documents: neither parsed, embedded nor written again
    index.calls.clear()
    embedder.texts.clear()
    again = _sync(cfg, engine, index, embedder)
    assert again.counts["unchanged"] == 10 and again.chunks_embedded == 0
    assert embedder.texts == [] and index.calls == []
    (docs / "doc3.md").write_text("# Doc 3\n\nA new text about parking.\n")
    changed = _sync(cfg, engine, index, embedder)
    assert changed.counts["updated"] == 1 and changed.counts["unchanged"] == 9
    assert index.calls == [("batch", ["doc3.md"])]
    assert "parking" in index.lexical(["kb"], "parking", 1)[0].text
    index.close()


def test_a_refused_document_does_not_stop_its_batch(setup: tuple[Any, Any, Path], tmp_path: Path) -> None:
    cfg, engine, docs = setup
    (docs / "bad.md").write_text("# Bad\n\nThe index refuses this one.\n")
    index = RecordingIndex(tmp_path / "index.db")
    result = _sync(cfg, engine, index, FakeEmbedder(), batch=100)  # every document in one batch
    assert result.counts["added"] == 10 and result.counts["errors"] == 1
    assert [e["document_id"] for e in result.errors] == ["bad.md"]
    assert "refused by the test" in result.errors[0]["error"]
    assert index.count("kb") == 10  # the others were written one by one
    rows = store.stored_documents(engine, "kb")
    # recorded like a document that failed to parse (the default quality rules quarantine those)
    assert {k for k, r in rows.items() if r["status"] != "ok"} == {"bad.md"}
    assert rows["bad.md"]["chunks"] == 0 and "refused by the test" in rows["bad.md"]["error"]
    # the next sync looks at it again, and writes it once the index accepts it
    (docs / "bad.md").rename(docs / "good.md")
    again = _sync(cfg, engine, index, FakeEmbedder(), batch=100)
    assert again.counts["added"] == 1 and again.counts["removed"] == 1 and again.counts["errors"] == 0
    assert index.count("kb") == 11
    index.close()
