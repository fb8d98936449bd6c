"""The SQLite index's two vector engines give the same results, and each can take over the other's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aerodrome.knowledge.index.sqlite import SQLiteIndex
from tests.knowledge.index.backends import sqlite_vec_available
from tests.knowledge.index.corpus import chunk

pytestmark = pytest.mark.skipif(
    not sqlite_vec_available(), reason="pysqlite3-binary / sqlite-vec not installed"
)
DIMS = 16


def _fill(index: SQLiteIndex, vectors: np.ndarray) -> None:
    index.ensure_collection("kb", dims=DIMS, embedding_model="random")
    for i, vector in enumerate(vectors):
        meta = {"parity": "even" if i % 2 == 0 else "odd"}
        index.replace_document("kb", f"d{i}", [chunk("kb", f"d{i}", f"text {i}", vector.tolist(), 0, meta)])


def test_engine_is_chosen_automatically_and_reported(tmp_path: Path) -> None:
    assert SQLiteIndex(tmp_path / "a.db").vector_engine == "sqlite-vec"
    assert SQLiteIndex(tmp_path / "b.db", vector_engine="numpy").vector_engine == "numpy"


def test_numpy_fallback_ranks_like_sqlite_vec(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((300, DIMS)).astype(np.float32)
    vec, fallback = SQLiteIndex(tmp_path / "v.db"), SQLiteIndex(tmp_path / "n.db", vector_engine="numpy")
    _fill(vec, vectors)
    _fill(fallback, vectors)
    for query in rng.standard_normal((20, DIMS)):
        for filters in (None, {"metadata.parity": "odd"}):
            a = vec.dense(["kb"], query.tolist(), 25, filters)
            b = fallback.dense(["kb"], query.tolist(), 25, filters)
            assert [h.document_id for h in a] == [h.document_id for h in b]
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
            assert len(a) == 25


def test_a_file_written_without_sqlite_vec_is_reindexed_when_it_loads(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40, DIMS)).astype(np.float32)
    first = SQLiteIndex(path)  # creates the vec0 table
    _fill(first, vectors[:20])
    first.close()
    fallback = SQLiteIndex(path, vector_engine="numpy")  # writes only the BLOBs
    for i in range(20, 40):
        fallback.replace_document("kb", f"d{i}", [chunk("kb", f"d{i}", f"text {i}", vectors[i].tolist())])
    fallback.delete_document("kb", "d0")
    expected = [h.document_id for h in fallback.dense(["kb"], vectors[25].tolist(), 10)]
    fallback.close()
    again = SQLiteIndex(path)
    assert [h.document_id for h in again.dense(["kb"], vectors[25].tolist(), 10)] == expected
    assert expected[0] == "d25"
    assert all(h.document_id != "d0" for h in again.dense(["kb"], vectors[0].tolist(), 40))
    again.close()


def test_memory_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="file path"):
        SQLiteIndex(":memory:")
