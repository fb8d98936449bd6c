"""The SQLite index's layout version 1 (vectors twice) is upgraded in place; a newer one is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from aerodrome.knowledge.index.base import IndexUnavailable
from aerodrome.knowledge.index.sqlite import SQLiteIndex
from aerodrome.knowledge.index.sqlite_layout import SCHEMA_VERSION
from tests.knowledge.index.backends import sqlite_vec_available
from tests.knowledge.index.corpus import chunk

DIMS = 8
needs_sqlite_vec = pytest.mark.skipif(
    not sqlite_vec_available(), reason="pysqlite3-binary / sqlite-vec not installed"
)


def _version_1_file(path: Path, vectors: np.ndarray) -> None:
    """What layout 1 wrote with sqlite-vec: each vector in vec0 and as a BLOB on its chunk."""
    index = SQLiteIndex(path)
    index.ensure_collection("kb", dims=DIMS, embedding_model="random")
    for i, vector in enumerate(vectors):
        index.replace_document("kb", f"d{i}", [chunk("kb", f"d{i}", f"text {i}", vector.tolist())])
    index.close()
    conn = sqlite3.connect(path)
    for i, vector in enumerate(vectors):
        conn.execute(
            "UPDATE knowledge_chunks SET embedding = ? WHERE document_id = ?",
            (vector.astype("<f4").tobytes(), f"d{i}"),
        )
    conn.execute("UPDATE knowledge_index_meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def _meta(path: Path) -> tuple[str, int]:
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT value FROM knowledge_index_meta WHERE key = 'schema_version'").fetchone()[
        0
    ]
    blobs = conn.execute("SELECT count(*) FROM knowledge_chunks WHERE embedding IS NOT NULL").fetchone()[0]
    conn.close()
    return str(version), int(blobs)


@needs_sqlite_vec
def test_version_1_file_opened_with_sqlite_vec_keeps_each_vector_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    vectors = np.random.default_rng(1).standard_normal((25, DIMS)).astype(np.float32)
    _version_1_file(path, vectors)
    assert _meta(path) == ("1", 25)
    index = SQLiteIndex(path)
    assert _meta(path) == (SCHEMA_VERSION, 0)
    hits = index.dense(["kb"], vectors[7].tolist(), 5)
    assert hits[0].document_id == "d7" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert index.similarities(["kb"], [hits[1].chunk_id], vectors[7].tolist()) == {
        hits[1].chunk_id: pytest.approx(hits[1].score, abs=1e-5)
    }
    index.close()


@needs_sqlite_vec
def test_version_1_file_opened_without_sqlite_vec_keeps_its_blobs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    vectors = np.random.default_rng(2).standard_normal((25, DIMS)).astype(np.float32)
    _version_1_file(path, vectors)
    fallback = SQLiteIndex(path, vector_engine="numpy")
    assert _meta(path) == (SCHEMA_VERSION, 25)
    expected = [h.document_id for h in fallback.dense(["kb"], vectors[3].tolist(), 6)]
    assert expected[0] == "d3"
    fallback.replace_document("kb", "d24", [chunk("kb", "d24", "moved", vectors[3].tolist())])
    expected = [h.document_id for h in fallback.dense(["kb"], vectors[3].tolist(), 6)]
    fallback.close()
    shutil.copy(path, tmp_path / "copy.db")
    again = SQLiteIndex(path)  # sqlite-vec rebuilds vec0 from the BLOBs (the stale copy is dropped)
    assert [h.document_id for h in again.dense(["kb"], vectors[3].tolist(), 6)] == expected
    assert _meta(path) == (SCHEMA_VERSION, 0)
    again.close()


def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteIndex(path, vector_engine="numpy").close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE knowledge_index_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(IndexUnavailable, match="layout version 99"):
        SQLiteIndex(path, vector_engine="numpy")
