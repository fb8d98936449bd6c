"""The embedded index: one SQLite file (WAL) with FTS5 BM25 and exact cosine vectors.

Tables (index structures owned by this backend, created with ``IF NOT EXISTS``, layout
versioned in ``knowledge_index_meta`` and upgraded in place, see
:mod:`~aerodrome.knowledge.index.sqlite_layout`; they may share the platform's database file):
``knowledge_collections``, ``knowledge_chunks`` (text, citation fields, JSON metadata, and
the float32 vector BLOB when the numpy engine stores it), ``knowledge_fts`` (FTS5, external
content, porter + unicode61 with diacritics removed, kept in sync by triggers) and, with
sqlite-vec, ``knowledge_vec_<id>`` (the collection's vectors). Each vector is stored once.

Vectors use sqlite-vec when ``pysqlite3`` and ``sqlite_vec`` import (the standard
library's sqlite3 often cannot load extensions) and an in-process numpy index otherwise;
:attr:`SQLiteIndex.vector_engine` says which. Each thread gets its own connection, which
reads the file through mmap (up to 1 GiB).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aerodrome.knowledge.index.base import (
    CollectionNotFound,
    DimensionMismatch,
    Hit,
    IndexedChunk,
    join_chunk_texts,
)
from aerodrome.knowledge.index.budget import LEXICAL_BUDGET, count_cap, never_pruned, rarest_within_budget
from aerodrome.knowledge.index.filters import parse_filters, sqlite_where
from aerodrome.knowledge.index.sqlite_layout import ensure_layout
from aerodrome.knowledge.index.sqlite_vectors import (
    CollectionRef,
    NumpyEngine,
    SqliteVecEngine,
    VectorEngine,
    to_blob,
    vec_table,
)
from aerodrome.knowledge.index.terms import fts5_match, query_terms

EngineChoice = Literal["auto", "sqlite-vec", "numpy"]
_BM25_WEIGHTS = (0.0, 1.0, 1.0, 1.0)  # scope (the collection restriction: no weight), title, heading, text
_MMAP_BYTES = 1 << 30  # pages read through mmap, not read(): vec0 scans and FTS5 doclists (2x faster at 100k)
_HIT_COLUMNS = (
    "c.id, c.chunk_id, c.document_id, c.ordinal, c.text, c.title, c.uri, c.heading, c.page, c.metadata"
)


def _driver(choice: EngineChoice) -> tuple[Any, Any]:
    """(DB-API module, sqlite_vec module or None) for the requested engine."""
    if choice != "numpy":
        try:
            import pysqlite3.dbapi2 as pysqlite
            import sqlite_vec
        except ImportError:
            if choice == "sqlite-vec":
                raise
        else:
            return pysqlite, sqlite_vec
    return sqlite3, None


class SQLiteIndex:
    """:class:`~aerodrome.knowledge.index.base.IndexBackend` on a SQLite file."""

    name = "sqlite"

    def __init__(
        self, path: str | Path, *, vector_engine: EngineChoice = "auto", lexical_budget: int = LEXICAL_BUDGET
    ) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValueError("SQLiteIndex needs a file path (each thread opens its own connection)")
        if lexical_budget <= 0:
            raise ValueError("lexical_budget must be positive")
        self._path = str(path)
        self._lexical_budget = lexical_budget
        self._dbapi, self._sqlite_vec = _driver(vector_engine)
        self._engine: VectorEngine = SqliteVecEngine() if self._sqlite_vec is not None else NumpyEngine()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        conn = self._conn()
        ensure_layout(conn, vectors_in_blobs=self._engine.keeps_blobs)
        if self._sqlite_vec is not None:
            self._drop_orphan_vector_tables(conn)

    def _drop_orphan_vector_tables(self, conn: Any) -> None:
        """vec0 tables of collections dropped while sqlite-vec was unavailable."""
        live = {vec_table(row[0]) for row in conn.execute("SELECT id FROM knowledge_collections")}
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%' AND name LIKE 'knowledge_vec_%'"
        ).fetchall():
            if table not in live:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')

    @property
    def vector_engine(self) -> str:
        """``"sqlite-vec"`` or ``"numpy"``."""
        return self._engine.name

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._dbapi.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            if self._sqlite_vec is not None:
                conn.enable_load_extension(True)
                self._sqlite_vec.load(conn)
                conn.enable_load_extension(False)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _ref(self, conn: Any, collection: str) -> CollectionRef | None:
        row = conn.execute(
            "SELECT id, name, dims, generation, vec_generation FROM knowledge_collections WHERE name = ?",
            (collection,),
        ).fetchone()
        return CollectionRef(*row) if row else None

    def _bump(self, conn: Any, collection_id: int) -> None:
        sync = ", vec_generation = generation + 1" if self._engine.name == "sqlite-vec" else ""
        conn.execute(
            f"UPDATE knowledge_collections SET generation = generation + 1{sync} WHERE id = ?",
            (collection_id,),
        )

    # -- writes ---------------------------------------------------------------------------------------

    def ensure_collection(self, collection: str, *, dims: int, embedding_model: str) -> None:
        if dims <= 0:
            raise ValueError("dims must be positive")
        with self._write() as conn:
            row = conn.execute(
                "SELECT id, dims, embedding_model FROM knowledge_collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO knowledge_collections(name, dims, embedding_model) VALUES (?, ?, ?)",
                    (collection, dims, embedding_model),
                )
                collection_id = int(cursor.lastrowid)
            elif (row[1], row[2]) != (dims, embedding_model):
                collection_id = int(row[0])
                conn.execute(
                    "UPDATE knowledge_chunks SET embedding = NULL WHERE collection_id = ?", (collection_id,)
                )
                conn.execute(
                    "UPDATE knowledge_collections SET dims = ?, embedding_model = ? WHERE id = ?",
                    (dims, embedding_model, collection_id),
                )
            else:
                return
            self._engine.reset(conn, collection_id, dims)
            self._bump(conn, collection_id)

    def embedding_model(self, collection: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT embedding_model FROM knowledge_collections WHERE name = ?", (collection,))
            .fetchone()
        )
        return str(row[0]) if row else None

    def replace_document(self, collection: str, document_id: str, chunks: Sequence[IndexedChunk]) -> None:
        self.replace_documents(collection, {document_id: chunks})

    def replace_documents(self, collection: str, documents: Mapping[str, Sequence[IndexedChunk]]) -> None:
        """:meth:`replace_document` for many documents in one transaction (all or none written)."""
        conn = self._conn()
        ref = self._ref(conn, collection)
        if ref is None:
            raise CollectionNotFound(f"collection {collection!r} has no index; call ensure_collection first")
        prepared: dict[str, tuple[list[tuple[Any, ...]], list[bytes | None]]] = {}
        for document_id, chunks in documents.items():
            rows: list[tuple[Any, ...]] = []
            blobs: list[bytes | None] = []
            for chunk in chunks:
                if len(chunk.embedding) not in (0, ref.dims):
                    raise DimensionMismatch(
                        f"chunk {chunk.chunk_id}: vector of {len(chunk.embedding)} dims, collection has {ref.dims}"
                    )
                blobs.append(to_blob(chunk.embedding) if any(chunk.embedding) else None)  # zero: no vector
                metadata = json.dumps(chunk.metadata, ensure_ascii=False, default=str)
                rows.append((ref.id, chunk.chunk_id, document_id, chunk.ordinal, chunk.text, chunk.title,
                             chunk.uri, chunk.heading, chunk.page, metadata))  # fmt: skip
            prepared[document_id] = (rows, blobs)
        self._engine.prepare(conn, ref)
        keep = self._engine.keeps_blobs
        with self._write() as conn:
            for document_id, (rows, blobs) in prepared.items():
                self._delete_rows(conn, ref.id, document_id)
                vectors: list[tuple[int, bytes]] = []
                for row, blob in zip(rows, blobs, strict=True):
                    cursor = conn.execute(
                        "INSERT OR REPLACE INTO knowledge_chunks(collection_id, chunk_id, document_id, ordinal,"
                        " text, title, uri, heading, page, metadata, embedding)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, blob if keep else None),
                    )
                    if blob is not None:
                        vectors.append((int(cursor.lastrowid), blob))
                self._engine.write(conn, ref.id, vectors)
            self._bump(conn, ref.id)

    def _delete_rows(self, conn: Any, collection_id: int, document_id: str) -> None:
        rowids = [r[0] for r in conn.execute(
            "SELECT id FROM knowledge_chunks WHERE collection_id = ? AND document_id = ?",
            (collection_id, document_id),
        )]  # fmt: skip
        if rowids:
            self._engine.delete(conn, collection_id, rowids)
            conn.execute(
                "DELETE FROM knowledge_chunks WHERE collection_id = ? AND document_id = ?",
                (collection_id, document_id),
            )

    def delete_document(self, collection: str, document_id: str) -> None:
        conn = self._conn()
        ref = self._ref(conn, collection)
        if ref is None:
            return
        self._engine.prepare(conn, ref)
        with self._write() as conn:
            self._delete_rows(conn, ref.id, document_id)
            self._bump(conn, ref.id)

    def drop_collection(self, collection: str) -> None:
        with self._write() as conn:
            ref = self._ref(conn, collection)
            if ref is None:
                return
            conn.execute("DELETE FROM knowledge_chunks WHERE collection_id = ?", (ref.id,))
            conn.execute("DELETE FROM knowledge_collections WHERE id = ?", (ref.id,))
            self._engine.drop(conn, ref.id)

    def count(self, collection: str) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM knowledge_chunks c JOIN knowledge_collections k ON k.id = c.collection_id"
                " WHERE k.name = ?",
                (collection,),
            )
            .fetchone()
        )
        return int(row[0])

    # -- reads ----------------------------------------------------------------------------------------

    def document_texts(self, collection: str, document_ids: Sequence[str]) -> dict[str, str]:
        """Each document's chunks joined in order (overlaps included): what the quality report reads."""
        rows = self._conn().execute(
            "SELECT c.document_id, c.text FROM knowledge_chunks c JOIN knowledge_collections k"
            " ON k.id = c.collection_id WHERE k.name = ? ORDER BY c.document_id, c.ordinal",
            (collection,),
        )
        return join_chunk_texts(rows, document_ids)

    def _refs(self, conn: Any, collections: Sequence[str]) -> list[CollectionRef]:
        names = sorted(set(collections))
        if not names:
            return []
        rows = conn.execute(
            "SELECT id, name, dims, generation, vec_generation FROM knowledge_collections"
            f" WHERE name IN ({', '.join('?' * len(names))})",
            names,
        ).fetchall()
        return [CollectionRef(*row) for row in rows]

    def _hits(self, conn: Any, scored: list[tuple[int, float]], *, lexical: bool) -> list[Hit]:
        if not scored:
            return []
        rows = conn.execute(
            f"SELECT {_HIT_COLUMNS}, k.name FROM knowledge_chunks c"
            " JOIN knowledge_collections k ON k.id = c.collection_id"
            f" WHERE c.id IN ({', '.join('?' * len(scored))})",
            [rowid for rowid, _ in scored],
        ).fetchall()
        by_id = {row[0]: row for row in rows}
        hits = []
        for rowid, score in scored:
            row = by_id.get(rowid)
            if row is None:
                continue
            hits.append(Hit(
                chunk_id=row[1], score=score, collection=row[10], document_id=row[2], ordinal=row[3],
                text=row[4], title=row[5], uri=row[6], heading=row[7], page=row[8],
                metadata=json.loads(row[9]), lexical_score=score if lexical else None,
                dense_score=None if lexical else score,
            ))  # fmt: skip
        return hits

    def lexical(
        self, collections: Sequence[str], query: str, k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        """BM25 over the query's terms, the rarest first while their matches stay within the budget.

        FTS5 ranks every chunk an OR query matches (no early termination), so a query with
        common terms costs time in proportion to the collection (100k chunks: about half of
        them match a typical SciFact query). Each term's matches in the searched collections
        are counted (stopping at the budget); terms are taken rarest first while the sum of
        their counts stays within ``lexical_budget`` (the rarest always). The terms left out
        are the most common ones: their BM25 weight is the smallest, and they neither match
        nor score. Under the budget (SciFact's 5k chunks: always) the ranking is exact BM25.
        """
        conditions = parse_filters(filters)
        terms = query_terms(query)
        conn = self._conn()
        refs = self._refs(conn, collections)
        if not terms or not refs or k <= 0:
            return []
        where, params = sqlite_where(conditions)
        # The collection restriction is part of the full-text query itself: the scope column holds
        # "c<collection id>", so FTS5 only ever visits chunks of the given collections.
        scope = "{scope} : (" + " OR ".join(f'"c{ref.id}"' for ref in refs) + ")"
        terms = self._within_budget(conn, scope, terms)
        if not terms:
            return []
        sql = (
            f"SELECT knowledge_fts.rowid, -bm25(knowledge_fts, {', '.join(map(str, _BM25_WEIGHTS))}) AS score"
            " FROM knowledge_fts"
            + (" CROSS JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid" if where else "")
            + " WHERE knowledge_fts MATCH ?"
            + (f" AND {where}" if where else "")
            + " ORDER BY score DESC, knowledge_fts.rowid LIMIT ?"
        )
        args = [f"{scope} AND ({fts5_match(terms)})", *params, k]
        scored = [(int(rowid), float(score)) for rowid, score in conn.execute(sql, args)]
        return self._hits(conn, scored, lexical=True)

    def _within_budget(self, conn: Any, scope: str, terms: list[str]) -> list[str]:
        """The terms to match (:mod:`~aerodrome.knowledge.index.budget`: rarest first within the budget)."""
        budget = self._lexical_budget
        (size,) = conn.execute(  # the collections' chunks, counted up to the budget
            "SELECT count(*) FROM (SELECT 1 FROM knowledge_fts WHERE knowledge_fts MATCH ? LIMIT ?)",
            (scope, count_cap(budget)),
        ).fetchone()
        if never_pruned(int(size), budget):  # no query can match more chunks than that
            return terms
        counted = []
        for term in terms:
            (count,) = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM knowledge_fts WHERE knowledge_fts MATCH ? LIMIT ?)",
                (f"{scope} AND ({fts5_match([term])})", count_cap(budget)),
            ).fetchone()
            counted.append((term, int(count)))
        return rarest_within_budget(counted, budget)

    def dense(
        self,
        collections: Sequence[str],
        vector: Sequence[float],
        k: int,
        filters: dict[str, Any] | None = None,
    ) -> list[Hit]:
        conditions = parse_filters(filters)
        conn = self._conn()
        refs = self._refs(conn, collections)
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if k <= 0 or norm == 0.0:
            return []
        query = query / norm
        where, params = sqlite_where(conditions)
        scored: list[tuple[int, float]] = []
        for ref in refs:
            if ref.dims != len(query):
                raise DimensionMismatch(f"query vector has {len(query)} dims, {ref.name!r} has {ref.dims}")
            self._engine.prepare(conn, ref)
            allowed = None
            if where:
                allowed = f"SELECT c.id FROM knowledge_chunks c WHERE c.collection_id = {ref.id} AND {where}"
            scored.extend(self._engine.search(conn, ref, query, k, allowed, params))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return self._hits(conn, scored[:k], lexical=False)

    def similarities(
        self, collections: Sequence[str], chunk_ids: Sequence[str], vector: Sequence[float]
    ) -> dict[str, float]:
        conn = self._conn()
        refs = self._refs(conn, collections)
        ids = list(dict.fromkeys(chunk_ids))
        if not refs or not ids:
            return {}
        rows = conn.execute(
            "SELECT id, chunk_id, collection_id FROM knowledge_chunks"
            f" WHERE collection_id IN ({', '.join('?' * len(refs))}) AND chunk_id IN ({', '.join('?' * len(ids))})",
            [*(ref.id for ref in refs), *ids],
        ).fetchall()
        query = np.asarray(vector, dtype=np.float32)
        query_norm = float(np.linalg.norm(query))
        result = {}
        for ref in refs:
            wanted = {int(rowid): chunk_id for rowid, chunk_id, owner in rows if owner == ref.id}
            if not wanted:
                continue
            self._engine.prepare(conn, ref)
            for rowid, stored in self._engine.vectors(conn, ref.id, list(wanted)).items():
                if stored.shape != query.shape:
                    continue
                denominator = float(np.linalg.norm(stored)) * query_norm
                result[wanted[rowid]] = float(stored @ query) / denominator if denominator else 0.0
        return result

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
