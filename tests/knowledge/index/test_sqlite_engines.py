"""The SQLite index's two vector engines: same results, each vector stored once, hand-over between them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from aerodrome.knowledge.index.base import IndexUnavailable
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


def test_lexical_and_similarities_agree_between_engines(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((60, DIMS)).astype(np.float32)
    vec, fallback = SQLiteIndex(tmp_path / "v.db"), SQLiteIndex(tmp_path / "n.db", vector_engine="numpy")
    _fill(vec, vectors)
    _fill(fallback, vectors)
    for query in ("text 7", "text", "17 OR 3"):
        a, b = vec.lexical(["kb"], query, 20), fallback.lexical(["kb"], query, 20)
        assert [(h.chunk_id, h.score) for h in a] == [(h.chunk_id, h.score) for h in b]
    ids = [h.chunk_id for h in vec.lexical(["kb"], "text", 30)]
    assert vec.similarities(["kb"], ids, vectors[4].tolist()) == pytest.approx(
        fallback.similarities(["kb"], ids, vectors[4].tolist()), abs=1e-6
    )


def _stored(path: Path) -> tuple[int, int]:
    """(chunks with a vector BLOB, rows of the vec0 shadow table listing vector rowids)."""
    conn = sqlite3.connect(path)
    blobs = conn.execute("SELECT count(*) FROM knowledge_chunks WHERE embedding IS NOT NULL").fetchone()[0]
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    in_vec0 = conn.execute("SELECT count(*) FROM knowledge_vec_1_rowids").fetchone()[0] if (
        "knowledge_vec_1_rowids" in names) else 0  # fmt: skip
    conn.close()
    return int(blobs), int(in_vec0)


def test_each_vector_is_stored_once(tmp_path: Path) -> None:
    vectors = np.random.default_rng(5).standard_normal((30, DIMS)).astype(np.float32)
    vec, fallback = SQLiteIndex(tmp_path / "v.db"), SQLiteIndex(tmp_path / "n.db", vector_engine="numpy")
    _fill(vec, vectors)
    _fill(fallback, vectors)
    vec.delete_document("kb", "d3")
    assert _stored(tmp_path / "v.db") == (0, 29)  # sqlite-vec: in vec0 only
    assert _stored(tmp_path / "n.db") == (30, 0)  # numpy: BLOBs only


def test_sqlite_vec_takes_over_a_collection_the_numpy_engine_wrote(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    vectors = np.random.default_rng(3).standard_normal((40, DIMS)).astype(np.float32)
    fallback = SQLiteIndex(path, vector_engine="numpy")
    _fill(fallback, vectors)
    fallback.delete_document("kb", "d0")
    expected = fallback.dense(["kb"], vectors[25].tolist(), 10)
    fallback.close()
    again = SQLiteIndex(path)
    taken_over = again.dense(["kb"], vectors[25].tolist(), 10)
    assert [h.document_id for h in taken_over] == [h.document_id for h in expected]
    assert [h.score for h in taken_over] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert expected[0].document_id == "d25"
    assert all(h.document_id != "d0" for h in again.dense(["kb"], vectors[0].tolist(), 40))
    assert _stored(path) == (0, 39)  # moved into vec0, BLOBs cleared
    again.close()


def test_numpy_engine_refuses_vector_work_on_a_collection_in_sqlite_vec(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    vectors = np.random.default_rng(4).standard_normal((10, DIMS)).astype(np.float32)
    first = SQLiteIndex(path)
    _fill(first, vectors)
    first.close()
    fallback = SQLiteIndex(path, vector_engine="numpy")
    assert [h.document_id for h in fallback.lexical(["kb"], "text 3", 1)] == ["d3"]  # full text still works
    with pytest.raises(IndexUnavailable, match="sqlite-vec"):
        fallback.dense(["kb"], vectors[0].tolist(), 5)
    with pytest.raises(IndexUnavailable, match="sqlite-vec"):
        fallback.replace_document("kb", "d1", [chunk("kb", "d1", "new", vectors[1].tolist())])
    with pytest.raises(IndexUnavailable, match="sqlite-vec"):
        fallback.delete_document("kb", "d1")
    fallback.close()
    assert _stored(path) == (0, 10)  # nothing lost


def test_memory_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="file path"):
        SQLiteIndex(":memory:")
