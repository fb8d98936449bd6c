"""The PostgreSQL index's tables, their layout version and the upgrade of older layouts.

The layout version is ``knowledge_index_meta.schema_version``:

* ``1``: chunks with a ``tsv`` column (``english`` tsvector, GIN index) ranked by idf times ``ts_rank``;
* ``2``: BM25 postings (:mod:`~aerodrome.knowledge.index.postgres_bm25`): ``knowledge_postings``,
  ``knowledge_chunks.length`` / ``.terms``, ``knowledge_collections.chunks`` / ``.tokens``;
  no ``tsv`` column and no GIN index.

:func:`ensure_layout` runs when a :class:`~aerodrome.knowledge.index.postgres.PostgresIndex`
opens, in one transaction under the schema advisory lock: it creates the current layout, or
upgrades a version 1 index in place (every chunk is tokenized again to write its postings;
vectors and HNSW indexes are kept, nothing is re-embedded), or refuses a newer layout.
"""

from __future__ import annotations

from typing import Any

import psycopg

from aerodrome.knowledge.index.base import IndexUnavailable
from aerodrome.knowledge.index.postgres_bm25 import chunk_terms, posting_arrays
from aerodrome.knowledge.index.tokenizer import Tokenizer

SCHEMA_VERSION = "2"
_UPGRADE_BATCH = 2000  # chunks tokenized per statement while upgrading from version 1

_POSTINGS = """
CREATE TABLE IF NOT EXISTS knowledge_postings (
    collection_id bigint NOT NULL, term text NOT NULL, chunk bigint NOT NULL, tf integer NOT NULL,
    length integer NOT NULL, PRIMARY KEY (collection_id, term, chunk) INCLUDE (tf, length));
"""
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS knowledge_index_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS knowledge_collections (
    id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, dims integer NOT NULL, embedding_model text NOT NULL,
    chunks bigint NOT NULL DEFAULT 0, tokens bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES knowledge_collections (id) ON DELETE CASCADE,
    chunk_id text NOT NULL, document_id text NOT NULL, ordinal integer NOT NULL, text text NOT NULL,
    title text, uri text NOT NULL DEFAULT '', heading text, page integer, metadata jsonb NOT NULL DEFAULT '{}',
    embedding vector, length integer NOT NULL DEFAULT 0, terms text[] NOT NULL DEFAULT '{}',
    UNIQUE (collection_id, chunk_id));
CREATE INDEX IF NOT EXISTS knowledge_chunks_document ON knowledge_chunks (collection_id, document_id);
"""
    + _POSTINGS
)
_UPGRADE_FROM_1 = (
    """
ALTER TABLE knowledge_collections ADD COLUMN IF NOT EXISTS chunks bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS length integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS terms text[] NOT NULL DEFAULT '{}';
"""
    + _POSTINGS
)
_BACKFILL = """
WITH r AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(lengths)s::int[], %(terms)s::text[]) AS r(id, length, terms)),
updated AS (
    UPDATE knowledge_chunks c SET length = r.length, terms = string_to_array(r.terms, ' ')
    FROM r WHERE c.id = r.id RETURNING c.id, c.collection_id, c.length)
INSERT INTO knowledge_postings (collection_id, term, chunk, tf, length)
SELECT u.collection_id, p.term, u.id, p.tf, u.length
FROM unnest(%(posting_chunks)s::bigint[], %(posting_terms)s::text[], %(posting_tfs)s::int[]) AS p(id, term, tf)
JOIN updated u ON u.id = p.id
"""
_STATISTICS = """
UPDATE knowledge_collections k
SET chunks = (SELECT count(*) FROM knowledge_chunks c WHERE c.collection_id = k.id),
    tokens = (SELECT coalesce(sum(c.length), 0) FROM knowledge_chunks c WHERE c.collection_id = k.id)
"""


def layout_version(conn: psycopg.Connection[Any]) -> str | None:
    """The index's layout version, None when there is no index yet."""
    row = conn.execute("SELECT to_regclass('knowledge_index_meta') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    row = conn.execute("SELECT value FROM knowledge_index_meta WHERE key = 'schema_version'").fetchone()
    return str(row[0]) if row else None


def ensure_layout(conn: psycopg.Connection[Any], tokenizer: Tokenizer) -> None:
    """Create, upgrade or accept the layout (call inside a transaction holding the schema lock)."""
    version = layout_version(conn)
    if version is None:
        conn.execute(_SCHEMA)
    elif version == "1":
        _upgrade_from_1(conn, tokenizer)
    elif version != SCHEMA_VERSION:
        raise IndexUnavailable(
            f"the PostgreSQL index has layout version {version}, newer than this Aerodrome's ({SCHEMA_VERSION}):"
            " upgrade Aerodrome"
        )
    conn.execute(
        "INSERT INTO knowledge_index_meta (key, value) VALUES ('schema_version', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (SCHEMA_VERSION,),
    )


def _upgrade_from_1(conn: psycopg.Connection[Any], tokenizer: Tokenizer) -> None:
    conn.execute(_UPGRADE_FROM_1)
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, title, heading, text FROM knowledge_chunks WHERE id > %s ORDER BY id LIMIT %s",
            (last, _UPGRADE_BATCH),
        ).fetchall()
        if not rows:
            break
        last = int(rows[-1][0])
        terms = [chunk_terms(tokenizer, title, heading, text) for _, title, heading, text in rows]
        ids = [int(row[0]) for row in rows]
        owners, words, counts = posting_arrays(ids, terms)
        conn.execute(
            _BACKFILL,
            {
                "ids": ids, "lengths": [t.length for t in terms],
                "terms": [t.terms for t in terms], "posting_chunks": owners, "posting_terms": words,
                "posting_tfs": counts,
            },
        )  # fmt: skip
    conn.execute(_STATISTICS)
    conn.execute("DROP INDEX IF EXISTS knowledge_chunks_tsv")
    conn.execute("ALTER TABLE knowledge_chunks DROP COLUMN IF EXISTS tsv")
