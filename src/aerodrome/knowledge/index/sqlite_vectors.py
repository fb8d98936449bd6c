"""Exact cosine search for the SQLite index: sqlite-vec when it can load, numpy otherwise.

Each vector is stored once (layout version 2), where the engine that wrote it searches it;
both engines give the same results (exact cosine):

- ``sqlite-vec``: one ``vec0`` table per collection (``knowledge_vec_<id>``, cosine metric)
  holds the collection's vectors, searched with KNN inside SQLite; filters become a
  ``rowid IN (...)`` pre-filter. ``knowledge_chunks.embedding`` stays NULL.
- ``numpy``: the vectors are float32 BLOBs in ``knowledge_chunks.embedding`` (readable by
  any SQLite), loaded into a normalised float32 matrix, cached per collection and
  invalidated by the collection's write generation (RAM: 4 bytes x dims per chunk).

``knowledge_collections.generation`` counts writes; ``vec_generation`` is the generation
the vec0 table reflects. A collection is *vec0-backed* when the two are equal (sqlite-vec
wrote last and its vectors are in vec0 only) and *BLOB-backed* otherwise. sqlite-vec takes
a BLOB-backed collection over on first use (vec0 rebuilt from the BLOBs, which are then
cleared); the numpy engine cannot read vec0, so it refuses vector work on a vec0-backed
collection with :class:`~aerodrome.knowledge.index.base.IndexUnavailable` (full-text
search still works).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from aerodrome.knowledge.index.base import IndexUnavailable

_VEC0_MAX_K = 4096


@dataclass(frozen=True, slots=True)
class CollectionRef:
    id: int
    name: str
    dims: int
    generation: int
    vec_generation: int


def to_blob(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vec_table(collection_id: int) -> str:
    return f"knowledge_vec_{int(collection_id)}"


def vec0_backed(ref: CollectionRef) -> bool:
    """The collection's vectors are in its vec0 table only (sqlite-vec wrote it last)."""
    return ref.vec_generation == ref.generation


class VectorEngine(Protocol):
    name: str
    keeps_blobs: bool  # vectors stay in knowledge_chunks.embedding (else: in the engine's own table only)

    def prepare(self, conn: Any, ref: CollectionRef) -> None:
        """Make the collection's structure current before a write or a search (raises IndexUnavailable)."""

    def reset(self, conn: Any, collection_id: int, dims: int) -> None:
        """(Re)create the collection's empty structure with ``dims`` (inside the write transaction)."""

    def drop(self, conn: Any, collection_id: int) -> None: ...

    def write(self, conn: Any, collection_id: int, rows: Sequence[tuple[int, bytes]]) -> None: ...

    def delete(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> None: ...

    def search(
        self, conn: Any, ref: CollectionRef, query: np.ndarray, k: int, allowed: str | None, params: list[Any]
    ) -> list[tuple[int, float]]:
        """(rowid, cosine) best first; ``allowed`` is a SELECT of the rowids that pass the filters."""

    def vectors(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those chunks (chunks without one are left out)."""


class SqliteVecEngine:
    """KNN with sqlite-vec's ``vec0`` tables (exact, brute force inside SQLite)."""

    name = "sqlite-vec"
    keeps_blobs = False

    def prepare(self, conn: Any, ref: CollectionRef) -> None:
        """Take a BLOB-backed collection over: vec0 rebuilt from the BLOBs, which are then cleared."""
        if vec0_backed(ref):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT generation, vec_generation FROM knowledge_collections WHERE id = ?", (ref.id,)
            ).fetchone()
            if row is not None and row[0] != row[1]:  # another connection may have taken it over meanwhile
                self.reset(conn, ref.id, ref.dims)
                rows = conn.execute(
                    "SELECT id, embedding FROM knowledge_chunks WHERE collection_id = ? AND embedding IS NOT NULL",
                    (ref.id,),
                ).fetchall()
                self.write(conn, ref.id, rows)
                conn.execute(
                    "UPDATE knowledge_chunks SET embedding = NULL WHERE collection_id = ? AND embedding IS NOT NULL",
                    (ref.id,),
                )
                conn.execute(
                    "UPDATE knowledge_collections SET vec_generation = generation WHERE id = ?", (ref.id,)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reset(self, conn: Any, collection_id: int, dims: int) -> None:
        table = vec_table(collection_id)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE VIRTUAL TABLE {table} USING vec0(embedding float[{int(dims)}] distance_metric=cosine)"
        )

    def drop(self, conn: Any, collection_id: int) -> None:
        conn.execute(f"DROP TABLE IF EXISTS {vec_table(collection_id)}")

    def write(self, conn: Any, collection_id: int, rows: Sequence[tuple[int, bytes]]) -> None:
        table = vec_table(collection_id)
        nonzero = [(rowid, blob) for rowid, blob in rows if np.any(np.frombuffer(blob, dtype="<f4"))]
        conn.executemany(f"INSERT INTO {table}(rowid, embedding) VALUES (?, ?)", nonzero)

    def delete(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> None:
        conn.executemany(f"DELETE FROM {vec_table(collection_id)} WHERE rowid = ?", [(r,) for r in rowids])

    def search(
        self, conn: Any, ref: CollectionRef, query: np.ndarray, k: int, allowed: str | None, params: list[Any]
    ) -> list[tuple[int, float]]:
        sql = f"SELECT rowid, distance FROM {vec_table(ref.id)} WHERE embedding MATCH ? AND k = ?"
        args: list[Any] = [query.astype("<f4").tobytes(), min(k, _VEC0_MAX_K)]
        if allowed is not None:
            sql += f" AND rowid IN ({allowed})"
            args += params
        return [(int(rowid), 1.0 - float(distance)) for rowid, distance in conn.execute(sql, args)]

    def vectors(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        if not rowids:
            return {}
        rows = conn.execute(
            f"SELECT rowid, embedding FROM {vec_table(collection_id)}"
            f" WHERE rowid IN ({', '.join('?' * len(rowids))})",
            list(rowids),
        )
        return {int(rowid): np.frombuffer(blob, dtype="<f4") for rowid, blob in rows}


@dataclass(slots=True)
class _Matrix:
    generation: int
    rowids: np.ndarray  # sorted int64
    vectors: np.ndarray  # (n, dims) float32, rows L2-normalised (zero rows stay zero)


class NumpyEngine:
    """Exact cosine over an in-process matrix per collection, reloaded when the collection changes."""

    name = "numpy"
    keeps_blobs = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[int, _Matrix] = {}

    def prepare(self, conn: Any, ref: CollectionRef) -> None:
        if vec0_backed(ref):
            raise IndexUnavailable(
                f"collection {ref.name!r} keeps its vectors in sqlite-vec, which this Python cannot load:"
                " install pysqlite3-binary and sqlite-vec (full-text search still works)"
            )

    def reset(self, conn: Any, collection_id: int, dims: int) -> None:
        self._forget(collection_id)

    def drop(self, conn: Any, collection_id: int) -> None:
        self._forget(collection_id)

    def write(self, conn: Any, collection_id: int, rows: Sequence[tuple[int, bytes]]) -> None:
        return None  # the generation bump invalidates the cached matrix

    def delete(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> None:
        return None

    def _forget(self, collection_id: int) -> None:
        with self._lock:
            self._cache.pop(collection_id, None)

    def _matrix(self, conn: Any, ref: CollectionRef) -> _Matrix:
        with self._lock:
            cached = self._cache.get(ref.id)
        if cached is not None and cached.generation == ref.generation:
            return cached
        rows = conn.execute(
            "SELECT id, embedding FROM knowledge_chunks WHERE collection_id = ? AND embedding IS NOT NULL "
            "ORDER BY id",
            (ref.id,),
        ).fetchall()
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if rows:
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), ref.dims)
            vectors = vectors.astype(np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        else:
            vectors = np.zeros((0, ref.dims), dtype=np.float32)
        matrix = _Matrix(ref.generation, rowids, vectors)
        with self._lock:
            self._cache[ref.id] = matrix
        return matrix

    def search(
        self, conn: Any, ref: CollectionRef, query: np.ndarray, k: int, allowed: str | None, params: list[Any]
    ) -> list[tuple[int, float]]:
        matrix = self._matrix(conn, ref)
        if not len(matrix.rowids):
            return []
        # einsum, not matmul: OpenBLAS's threaded gemv keeps its threads spinning after each call,
        # which on a busy machine (or beside the embedding model's own threads) doubled the
        # latency; einsum's single-threaded SIMD loop is faster here (100k x 384: 11 ms vs 23 ms p50).
        scores = np.einsum("ij,j->i", matrix.vectors, query.astype(np.float32, copy=False))
        if allowed is not None:
            keep = np.fromiter((r[0] for r in conn.execute(allowed, params)), dtype=np.int64)
            mask = np.isin(matrix.rowids, keep, assume_unique=False)
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(matrix.rowids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def vectors(self, conn: Any, collection_id: int, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        if not rowids:
            return {}
        rows = conn.execute(
            "SELECT id, embedding FROM knowledge_chunks WHERE embedding IS NOT NULL"
            f" AND collection_id = ? AND id IN ({', '.join('?' * len(rowids))})",
            [collection_id, *rowids],
        )
        return {int(rowid): np.frombuffer(blob, dtype="<f4") for rowid, blob in rows}
