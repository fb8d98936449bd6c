"""The embedded index: one SQLite file (WAL) with FTS5 BM25 and exact cosine vectors.

Tables (index structures owned by this backend, created with ``IF NOT EXISTS``, layout
versioned in ``knowledge_index_meta``; they may share the platform's database file):
``knowledge_collections``, ``knowledge_chunks`` (text, citation fields, JSON metadata,
float32 vector BLOB), ``knowledge_fts`` (FTS5, external content, porter + unicode61 with
diacritics removed, kept in sync by triggers) and, with sqlite-vec, ``knowledge_vec_<id>``.

Vectors use sqlite-vec when ``pysqlite3`` and ``sqlite_vec`` import (the standard
library's sqlite3 often cannot load extensions) and an in-process numpy index otherwise;
:attr:`SQLiteIndex.vector_engine` says which. Each thread gets its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
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
from aerodrome.knowledge.index.filters import parse_filters, sqlite_where
from aerodrome.knowledge.index.sqlite_vectors import (
    CollectionRef,
    NumpyEngine,
    SqliteVecEngine,
    VectorEngine,
    to_blob,
    vec_table,
)
from aerodrome.knowledge.index.terms import fts5_match, query_terms

SCHEMA_VERSION = "1"  # bump with a migration step when the layout changes
EngineChoice = Literal["auto", "sqlite-vec", "numpy"]
_BM25_WEIGHTS = (0.0, 1.0, 1.0, 1.0)  # scope (the collection restriction: no weight), title, heading, text
_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge_index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS knowledge_collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, dims INTEGER NOT NULL,
    embedding_model TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
    vec_generation INTEGER NOT NULL DEFAULT -1);
CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL, chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL, title TEXT,
    uri TEXT NOT NULL DEFAULT '', heading TEXT, page INTEGER, metadata TEXT NOT NULL DEFAULT '{}',
    embedding BLOB, scope TEXT GENERATED ALWAYS AS ('c' || collection_id) VIRTUAL,
    UNIQUE (collection_id, chunk_id));
CREATE INDEX IF NOT EXISTS knowledge_chunks_document ON knowledge_chunks (collection_id, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5(
    scope, title, heading, text, content='knowledge_chunks', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts(rowid, scope, title, heading, text)
    VALUES (new.id, new.scope, new.title, new.heading, new.text);
END;
CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts(knowledge_fts, rowid, scope, title, heading, text)
    VALUES ('delete', old.id, old.scope, old.title, old.heading, old.text);
END;
"""
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

    def __init__(self, path: str | Path, *, vector_engine: EngineChoice = "auto") -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValueError("SQLiteIndex needs a file path (each thread opens its own connection)")
        self._path = str(path)
        self._dbapi, self._sqlite_vec = _driver(vector_engine)
        self._engine: VectorEngine = SqliteVecEngine() if self._sqlite_vec is not None else NumpyEngine()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        conn = self._conn()
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO knowledge_index_meta(key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )
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
        conn = self._conn()
        ref = self._ref(conn, collection)
        if ref is None:
            raise CollectionNotFound(f"collection {collection!r} has no index; call ensure_collection first")
        rows = []
        for chunk in chunks:
            if len(chunk.embedding) not in (0, ref.dims):
                raise DimensionMismatch(
                    f"chunk {chunk.chunk_id}: vector of {len(chunk.embedding)} dims, collection has {ref.dims}"
                )
            blob = to_blob(chunk.embedding) if any(chunk.embedding) else None  # zero: no vector
            metadata = json.dumps(chunk.metadata, ensure_ascii=False, default=str)
            rows.append((ref.id, chunk.chunk_id, document_id, chunk.ordinal, chunk.text, chunk.title,
                         chunk.uri, chunk.heading, chunk.page, metadata, blob))  # fmt: skip
        self._engine.prepare(conn, ref)
        with self._write() as conn:
            self._delete_rows(conn, ref.id, document_id)
            vectors: list[tuple[int, bytes]] = []
            for row in rows:
                cursor = conn.execute(
                    "INSERT OR REPLACE INTO knowledge_chunks(collection_id, chunk_id, document_id, ordinal, text,"
                    " title, uri, heading, page, metadata, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                if row[-1] is not None:
                    vectors.append((int(cursor.lastrowid), row[-1]))
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
        conditions = parse_filters(filters)
        terms = query_terms(query)
        conn = self._conn()
        refs = self._refs(conn, collections)
        if not terms or not refs or k <= 0:
            return []
        where, params = sqlite_where(conditions)
        # The collection restriction is part of the full-text query itself: the scope column holds
        # "c<collection id>", so FTS5 only ever visits chunks of the given collections.
        scopes = " OR ".join(f'"c{ref.id}"' for ref in refs)
        match = f"{{scope}} : ({scopes}) AND ({fts5_match(terms)})"
        sql = (
            f"SELECT knowledge_fts.rowid, -bm25(knowledge_fts, {', '.join(map(str, _BM25_WEIGHTS))}) AS score"
            " FROM knowledge_fts"
            + (" CROSS JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid" if where else "")
            + " WHERE knowledge_fts MATCH ?"
            + (f" AND {where}" if where else "")
            + " ORDER BY score DESC, knowledge_fts.rowid LIMIT ?"
        )
        args = [match, *params, k]
        scored = [(int(rowid), float(score)) for rowid, score in conn.execute(sql, args)]
        return self._hits(conn, scored, lexical=True)

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
            "SELECT chunk_id, embedding FROM knowledge_chunks WHERE embedding IS NOT NULL"
            f" AND collection_id IN ({', '.join('?' * len(refs))}) AND chunk_id IN ({', '.join('?' * len(ids))})",
            [*(ref.id for ref in refs), *ids],
        ).fetchall()
        query = np.asarray(vector, dtype=np.float32)
        result = {}
        for chunk_id, blob in rows:
            stored = np.frombuffer(blob, dtype="<f4")
            if stored.shape != query.shape:
                continue
            denominator = float(np.linalg.norm(stored) * np.linalg.norm(query))
            result[chunk_id] = float(stored @ query) / denominator if denominator else 0.0
        return result

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
