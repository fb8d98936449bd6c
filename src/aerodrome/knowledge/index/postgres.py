"""The scaled index: PostgreSQL with pgvector (HNSW, cosine) and BM25 postings.

Tables (index structures owned by this backend, created with ``IF NOT EXISTS`` under an
advisory lock, layout versioned in ``knowledge_index_meta`` and upgraded in place: see
:mod:`~aerodrome.knowledge.index.postgres_layout`): ``knowledge_collections``,
``knowledge_chunks``, whose ``embedding`` column is an untyped ``vector`` so each
collection keeps its own dims, and ``knowledge_postings``. Each collection gets a partial
HNSW index on ``embedding::vector(<dims>)`` (``knowledge_chunks_hnsw_<id>``), used by
unfiltered dense queries; filtered dense queries scan the filtered rows exactly (HNSW would
filter after its candidate list and could return fewer than ``k`` rows).

Lexical search is BM25 over postings this backend writes with each chunk, with the
SQLite backend's tokenizer and formula (see :mod:`~aerodrome.knowledge.index.postgres_bm25`),
so both backends rank alike. Writes to one collection serialise on its statistics row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
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
from aerodrome.knowledge.index.budget import LEXICAL_BUDGET, count_cap, never_pruned, rarest_within_budget
from aerodrome.knowledge.index.filters import parse_filters, postgres_where
from aerodrome.knowledge.index.postgres_bm25 import (
    COUNT_STEMS,
    DELETE_DOCUMENTS,
    INSERT_CHUNKS,
    chunk_terms,
    posting_arrays,
    rank_sql,
    term_stems,
)
from aerodrome.knowledge.index.postgres_layout import SCHEMA_VERSION, ensure_layout
from aerodrome.knowledge.index.tokenizer import Tokenizer

__all__ = ["SCHEMA_VERSION", "PostgresIndex"]
_LOCK_KEY = 0x6B6E6F77  # advisory lock id of schema changes ("know")
_HIT_COLUMNS = "c.id, c.chunk_id, c.document_id, c.ordinal, c.text, c.title, c.uri, c.heading, c.page, c.metadata, k.name"


def _hnsw_index(collection_id: int) -> str:
    return f"knowledge_chunks_hnsw_{int(collection_id)}"


def _vector(values: Sequence[float] | np.ndarray) -> Any:
    from pgvector import Vector

    return Vector(np.asarray(values, dtype=np.float32))


class PostgresIndex:
    """:class:`~aerodrome.knowledge.index.base.IndexBackend` on PostgreSQL with pgvector."""

    name = "postgres"

    def __init__(self, url: str, *, lexical_budget: int = LEXICAL_BUDGET) -> None:
        if lexical_budget <= 0:
            raise ValueError("lexical_budget must be positive")
        self._url = url
        self._lexical_budget = lexical_budget
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[psycopg.Connection[Any]] = []
        self._tokenizer = Tokenizer()
        self._known: dict[
            str, tuple[int, int]
        ] = {}  # collection -> (id, dims), checked by the server on write
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
                ensure_layout(conn, self._tokenizer)

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
        self._known.pop(collection, None)
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
        self.replace_documents(collection, {document_id: chunks})

    def replace_documents(self, collection: str, documents: Mapping[str, Sequence[IndexedChunk]]) -> None:
        """:meth:`replace_document` for many documents in one transaction.

        The collection's id and dims are remembered, so a write is one round trip (a pipeline of
        BEGIN, lock, delete, insert, COMMIT); if another process dropped the collection or changed
        its dims meanwhile, the write fails inside the server, is rolled back and retried once.
        """
        rows: dict[str, tuple[str, IndexedChunk]] = {}
        for document_id, chunks in documents.items():
            for chunk in chunks:
                rows.setdefault(chunk.chunk_id, (document_id, chunk))  # a repeated chunk_id is written once
        chunks = [c for _, c in rows.values()]
        terms = [chunk_terms(self._tokenizer, c.title, c.heading, c.text) for c in chunks]
        owners, words, counts = posting_arrays(list(rows), terms)
        conn = self._conn()
        for attempt in (1, 2):
            ref = self._known.get(collection) if attempt == 1 else None
            if ref is None:
                ref = self._ref(conn, collection)
                if ref is None:
                    raise CollectionNotFound(
                        f"collection {collection!r} has no index; call ensure_collection first"
                    )
                self._known[collection] = ref
            collection_id, dims = ref
            embeddings = []
            for chunk in chunks:
                if len(chunk.embedding) not in (0, dims):
                    raise DimensionMismatch(
                        f"chunk {chunk.chunk_id}: vector of {len(chunk.embedding)} dims, collection has {dims}"
                    )
                embeddings.append(
                    _vector(chunk.embedding) if any(chunk.embedding) else None
                )  # zero: no vector
            try:
                with conn.pipeline(), conn.transaction():
                    self._lock_documents(conn, collection_id, list(documents))
                    conn.execute(
                        DELETE_DOCUMENTS, {"collection": collection_id, "documents": list(documents)}
                    )
                    if chunks:
                        conn.execute(INSERT_CHUNKS, {
                            "collection": collection_id, "documents": [d for d, _ in rows.values()],
                            "chunk_ids": list(rows), "ordinals": [c.ordinal for c in chunks],
                            "texts": [c.text for c in chunks], "titles": [c.title for c in chunks],
                            "uris": [c.uri for c in chunks], "headings": [c.heading for c in chunks],
                            "pages": [c.page for c in chunks], "metadata": [Jsonb(c.metadata) for c in chunks],
                            "embeddings": embeddings, "lengths": [t.length for t in terms],
                            "terms": [t.terms for t in terms], "posting_chunks": owners, "posting_terms": words,
                            "posting_tfs": counts,
                        })  # fmt: skip
                return
            except (psycopg.errors.ForeignKeyViolation, psycopg.errors.DataException):
                self._known.pop(collection, None)
                if attempt == 2 or self._ref(conn, collection) == ref:
                    raise  # not a stale collection id or dims: a real error

    @staticmethod
    def _lock_documents(conn: psycopg.Connection[Any], collection_id: int, document_ids: list[str]) -> None:
        """Per-document write locks, taken in sorted order (two batches never wait on each other in a cycle)."""
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(d)) FROM unnest(%s::text[]) WITH ORDINALITY AS u(d, n)"
            " ORDER BY n",
            (collection_id, sorted(set(document_ids))),
        )

    def delete_document(self, collection: str, document_id: str) -> None:
        with self._tx() as conn:
            ref = self._ref(conn, collection)
            if ref is None:
                return
            self._lock_documents(conn, ref[0], [document_id])
            conn.execute(DELETE_DOCUMENTS, {"collection": ref[0], "documents": [document_id]})

    def drop_collection(self, collection: str) -> None:
        self._known.pop(collection, None)
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            ref = self._ref(conn, collection)
            if ref is None:
                return
            conn.execute(f"DROP INDEX IF EXISTS {_hnsw_index(ref[0])}")
            conn.execute("DELETE FROM knowledge_postings WHERE collection_id = %s", (ref[0],))
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
        """BM25 over the query's terms, the rarest first while their matches stay within the budget.

        The same rule as the SQLite backend (:mod:`~aerodrome.knowledge.index.budget`): searches
        over at most ``lexical_budget`` chunks are exact BM25; above that each term's postings in
        the searched collections are counted (up to the budget) and the most common terms are left
        out, so at most about ``lexical_budget`` postings are scored. Filters apply in the ranking
        statement, never to the counts (as on SQLite).
        """
        conditions = parse_filters(filters)
        terms = term_stems(self._tokenizer, query)
        conn = self._conn()
        rows = conn.execute(
            "SELECT id, chunks, tokens FROM knowledge_collections WHERE name = ANY(%s)",
            (sorted(set(collections)),),
        ).fetchall()
        ids = [int(r[0]) for r in rows]
        n, tokens = sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)
        if not terms or not n or not tokens or k <= 0:
            return []
        if not never_pruned(n, self._lexical_budget):
            terms = self._within_budget(conn, ids, terms)
        stems = [stem for _, term_stems_ in terms for stem in term_stems_]
        if not stems:
            return []
        where, params = postgres_where(conditions)
        top = [] if where else [k]
        args = [stems, ids, stems, n, tokens / n, *top, *params, k]
        found = conn.execute(rank_sql(_HIT_COLUMNS, where), args).fetchall()
        return [self._hit(row, float(row[11]), lexical=True) for row in found]

    def _within_budget(
        self, conn: psycopg.Connection[Any], ids: list[int], terms: list[tuple[str, list[str]]]
    ) -> list[tuple[str, list[str]]]:
        """The terms to match: each counted by its postings in the collections (a term of several
        stems, which FTS5 would match as a phrase, by the sum of theirs), chosen as on SQLite."""
        cap = count_cap(self._lexical_budget)
        distinct = sorted({stem for _, stems in terms for stem in stems})
        counts = dict(
            conn.execute(COUNT_STEMS, {"collections": ids, "cap": cap, "stems": distinct}).fetchall()
        )
        counted = [((term, stems), min(cap, sum(int(counts[s]) for s in stems))) for term, stems in terms]
        return rarest_within_budget(counted, self._lexical_budget)

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
