"""The scaled index: PostgreSQL with pgvector (HNSW, cosine) and full-text search (GIN).

Tables (index structures owned by this backend, created with ``IF NOT EXISTS`` under an
advisory lock, layout versioned in ``knowledge_index_meta``): ``knowledge_collections``
and ``knowledge_chunks``, whose ``embedding`` column is an untyped ``vector`` so each
collection keeps its own dims. Each collection gets a partial HNSW index on
``embedding::vector(<dims>)`` (``knowledge_chunks_hnsw_<id>``), used by unfiltered
dense queries; filtered dense queries scan the filtered rows exactly (HNSW would filter
after its candidate list and could return fewer than ``k`` rows).

``tsv`` holds ``setweight`` title (A), heading (B) and text (D) vectors with the
``english`` configuration over diacritic-folded text (folded in Python, so no
``unaccent`` extension is needed); the rank is BM25-like (see ``_LEXICAL_SQL``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from aerodrome.knowledge.index.base import (
    CollectionNotFound,
    DimensionMismatch,
    Hit,
    IndexedChunk,
    IndexUnavailable,
    join_chunk_texts,
)
from aerodrome.knowledge.index.filters import parse_filters, postgres_where
from aerodrome.knowledge.index.terms import query_terms, websearch_text
from aerodrome.knowledge.index.text_folding import fold

SCHEMA_VERSION = "1"
_LOCK_KEY = 0x6B6E6F77  # advisory lock id of schema changes ("know")
# BM25-like rank: sum over query terms of idf(term) * ts_rank(tsv, term, 1), where idf is BM25's
# ln(1 + (N - df + 0.5) / (df + 0.5)) over the queried collections (df counted with the GIN index, _DF_SQL)
# and ts_rank gives a saturating term frequency divided by 1 + log(document length).
_DF_SQL = (
    "SELECT count(*) FROM knowledge_chunks WHERE collection_id = ANY(%s)"
    " AND tsv @@ plainto_tsquery('english', %s)"  # a constant query: the GIN index answers it
)
_LEXICAL_SQL = """
WITH weights AS MATERIALIZED (
    SELECT plainto_tsquery('english', w.term) AS q, w.idf FROM unnest(%s::text[], %s::float8[]) AS w(term, idf))
SELECT {cols}, (SELECT sum(w.idf * ts_rank(c.tsv, w.q, 1)) FROM weights w) AS score
FROM knowledge_chunks c JOIN knowledge_collections k ON k.id = c.collection_id
WHERE c.tsv @@ websearch_to_tsquery('english', %s) AND c.collection_id = ANY(%s){where}
ORDER BY score DESC, c.id LIMIT %s
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge_index_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS knowledge_collections (
    id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, dims integer NOT NULL, embedding_model text NOT NULL);
CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES knowledge_collections (id) ON DELETE CASCADE,
    chunk_id text NOT NULL, document_id text NOT NULL, ordinal integer NOT NULL, text text NOT NULL,
    title text, uri text NOT NULL DEFAULT '', heading text, page integer, metadata jsonb NOT NULL DEFAULT '{}',
    embedding vector, tsv tsvector NOT NULL, UNIQUE (collection_id, chunk_id));
CREATE INDEX IF NOT EXISTS knowledge_chunks_document ON knowledge_chunks (collection_id, document_id);
CREATE INDEX IF NOT EXISTS knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
INSERT INTO knowledge_index_meta (key, value) VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;
"""
_TSV = (
    "setweight(to_tsvector('english', %s), 'A') || setweight(to_tsvector('english', %s), 'B')"
    " || setweight(to_tsvector('english', %s), 'D')"
)
_HIT_COLUMNS = "c.id, c.chunk_id, c.document_id, c.ordinal, c.text, c.title, c.uri, c.heading, c.page, c.metadata, k.name"


def _hnsw_index(collection_id: int) -> str:
    return f"knowledge_chunks_hnsw_{int(collection_id)}"


def _vector(values: Sequence[float] | np.ndarray) -> Any:
    from pgvector import Vector

    return Vector(np.asarray(values, dtype=np.float32))


class PostgresIndex:
    """:class:`~aerodrome.knowledge.index.base.IndexBackend` on PostgreSQL with pgvector."""

    name = "postgres"

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []
        with psycopg.connect(url, autocommit=True) as conn:
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if available is None:
                raise IndexUnavailable(
                    "the PostgreSQL server has no pgvector extension: install pgvector (>= 0.5) on the server"
                    " to use the postgres index backend"
                )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(_SCHEMA)

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            from pgvector.psycopg import register_vector

            conn = psycopg.connect(self._url, autocommit=True)
            register_vector(conn)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._conn()
        with conn.transaction():
            yield conn

    def _ref(self, conn: psycopg.Connection[Any], collection: str) -> tuple[int, int] | None:
        row = conn.execute(
            "SELECT id, dims FROM knowledge_collections WHERE name = %s", (collection,)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    # -- writes ---------------------------------------------------------------------------------------

    def ensure_collection(self, collection: str, *, dims: int, embedding_model: str) -> None:
        if dims <= 0:
            raise ValueError("dims must be positive")
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            row = conn.execute(
                "SELECT id, dims, embedding_model FROM knowledge_collections WHERE name = %s", (collection,)
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO knowledge_collections (name, dims, embedding_model) VALUES (%s, %s, %s)"
                    " RETURNING id, dims, embedding_model",
                    (collection, dims, embedding_model),
                ).fetchone()
                assert row is not None
            elif (row[1], row[2]) != (dims, embedding_model):
                conn.execute(f"DROP INDEX IF EXISTS {_hnsw_index(row[0])}")
                conn.execute(
                    "UPDATE knowledge_chunks SET embedding = NULL WHERE collection_id = %s", (row[0],)
                )
                conn.execute(
                    "UPDATE knowledge_collections SET dims = %s, embedding_model = %s WHERE id = %s",
                    (dims, embedding_model, row[0]),
                )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_hnsw_index(row[0])} ON knowledge_chunks"
                f" USING hnsw ((embedding::vector({int(dims)})) vector_cosine_ops) WHERE collection_id = {int(row[0])}"
            )

    def embedding_model(self, collection: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT embedding_model FROM knowledge_collections WHERE name = %s", (collection,))
            .fetchone()
        )
        return str(row[0]) if row else None

    def replace_document(self, collection: str, document_id: str, chunks: Sequence[IndexedChunk]) -> None:
        with self._tx() as conn:
            ref = self._ref(conn, collection)
            if ref is None:
                raise CollectionNotFound(
                    f"collection {collection!r} has no index; call ensure_collection first"
                )
            collection_id, dims = ref
            rows = []
            for chunk in chunks:
                if len(chunk.embedding) not in (0, dims):
                    raise DimensionMismatch(
                        f"chunk {chunk.chunk_id}: vector of {len(chunk.embedding)} dims, collection has {dims}"
                    )
                vector = _vector(chunk.embedding) if any(chunk.embedding) else None  # zero: no vector
                rows.append((collection_id, chunk.chunk_id, document_id, chunk.ordinal, chunk.text, chunk.title,
                             chunk.uri, chunk.heading, chunk.page, Jsonb(chunk.metadata), vector,
                             fold(chunk.title or ""), fold(chunk.heading or ""), fold(chunk.text)))  # fmt: skip
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (collection_id, document_id))
            conn.execute(
                "DELETE FROM knowledge_chunks WHERE collection_id = %s AND document_id = %s",
                (collection_id, document_id),
            )
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO knowledge_chunks (collection_id, chunk_id, document_id, ordinal, text, title, uri,"
                    f" heading, page, metadata, embedding, tsv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    f" {_TSV}) ON CONFLICT (collection_id, chunk_id) DO NOTHING",
                    rows,
                )

    def delete_document(self, collection: str, document_id: str) -> None:
        self._conn().execute(
            "DELETE FROM knowledge_chunks c USING knowledge_collections k"
            " WHERE k.id = c.collection_id AND k.name = %s AND c.document_id = %s",
            (collection, document_id),
        )

    def drop_collection(self, collection: str) -> None:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            ref = self._ref(conn, collection)
            if ref is None:
                return
            conn.execute(f"DROP INDEX IF EXISTS {_hnsw_index(ref[0])}")
            conn.execute("DELETE FROM knowledge_chunks WHERE collection_id = %s", (ref[0],))
            conn.execute("DELETE FROM knowledge_collections WHERE id = %s", (ref[0],))

    def count(self, collection: str) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM knowledge_chunks c JOIN knowledge_collections k ON k.id = c.collection_id"
                " WHERE k.name = %s",
                (collection,),
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    # -- reads ----------------------------------------------------------------------------------------

    def document_texts(self, collection: str, document_ids: Sequence[str]) -> dict[str, str]:
        """Each document's chunks joined in order (overlaps included): what the quality report reads."""
        rows = self._conn().execute(
            "SELECT c.document_id, c.text FROM knowledge_chunks c JOIN knowledge_collections k"
            " ON k.id = c.collection_id WHERE k.name = %s ORDER BY c.document_id, c.ordinal",
            (collection,),
        )
        return join_chunk_texts(rows, document_ids)

    def _refs(self, conn: psycopg.Connection[Any], collections: Sequence[str]) -> list[tuple[int, int, str]]:
        rows = conn.execute(
            "SELECT id, dims, name FROM knowledge_collections WHERE name = ANY(%s) ORDER BY id",
            (sorted(set(collections)),),
        ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]

    @staticmethod
    def _hit(row: Sequence[Any], score: float, *, lexical: bool) -> Hit:
        return Hit(
            chunk_id=row[1], score=score, collection=row[10], document_id=row[2], ordinal=row[3], text=row[4],
            title=row[5], uri=row[6], heading=row[7], page=row[8], metadata=row[9],
            lexical_score=score if lexical else None, dense_score=None if lexical else score,
        )  # fmt: skip

    def lexical(
        self, collections: Sequence[str], query: str, k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        conditions = parse_filters(filters)
        terms = query_terms(fold(query))
        conn = self._conn()
        ids = [ref[0] for ref in self._refs(conn, collections)]
        if not terms or not ids or k <= 0:
            return []
        where, params = postgres_where(conditions)
        total = conn.execute(
            "SELECT count(*) FROM knowledge_chunks WHERE collection_id = ANY(%s)", (ids,)
        ).fetchone()
        n = int(total[0]) if total else 0
        idf = []
        for term in terms:
            row = conn.execute(_DF_SQL, (ids, term)).fetchone()
            df = int(row[0]) if row else 0
            idf.append(math.log(1 + (n - df + 0.5) / (df + 0.5)))
        sql = _LEXICAL_SQL.format(cols=_HIT_COLUMNS, where=f" AND {where}" if where else "")
        rows = conn.execute(sql, [terms, idf, websearch_text(terms), ids, *params, k]).fetchall()
        return [self._hit(row, float(row[11]), lexical=True) for row in rows]

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
        if k <= 0 or not refs or not np.any(query):
            return []
        where, params = postgres_where(conditions)
        parts: list[str] = []
        args: list[Any] = []
        for collection_id, dims, name in refs:
            if dims != len(query):
                raise DimensionMismatch(f"query vector has {len(query)} dims, {name!r} has {dims}")
            distance = f"(c.embedding::vector({dims}) <=> %s::vector({dims}))"
            order = f"{distance} + 0" if where else distance  # filtered: exact scan, not HNSW
            parts.append(
                f"(SELECT c.id, 1 - {distance} AS score FROM knowledge_chunks c"
                f" WHERE c.collection_id = {collection_id} AND c.embedding IS NOT NULL"
                + (f" AND {where}" if where else "")
                + f" ORDER BY {order} LIMIT %s)"
            )
            args += [_vector(query), *params, _vector(query), k]
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {min(1000, max(80, 2 * k))}")
            sql = (
                f"SELECT {_HIT_COLUMNS}, s.score FROM ({' UNION ALL '.join(parts)}) s"
                " JOIN knowledge_chunks c ON c.id = s.id JOIN knowledge_collections k ON k.id = c.collection_id"
                " ORDER BY s.score DESC, c.id LIMIT %s"
            )
            rows = conn.execute(sql, [*args, k]).fetchall()
        return [self._hit(row, float(row[11]), lexical=False) for row in rows]

    def similarities(
        self, collections: Sequence[str], chunk_ids: Sequence[str], vector: Sequence[float]
    ) -> dict[str, float]:
        conn = self._conn()
        query = np.asarray(vector, dtype=np.float32)
        if not chunk_ids or not np.any(query):
            return {}
        rows = conn.execute(
            "SELECT c.chunk_id, 1 - (c.embedding <=> %s) FROM knowledge_chunks c"
            " JOIN knowledge_collections k ON k.id = c.collection_id"
            " WHERE k.name = ANY(%s) AND k.dims = %s AND c.chunk_id = ANY(%s) AND c.embedding IS NOT NULL",
            (_vector(query), list(collections), len(query), list(chunk_ids)),
        ).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
