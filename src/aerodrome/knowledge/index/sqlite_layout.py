"""The SQLite index's tables, their layout version and the upgrade of older layouts.

The layout version is ``knowledge_index_meta.schema_version``:

* ``1``: every vector twice with sqlite-vec, as a float32 BLOB in ``knowledge_chunks.embedding``
  and in the collection's ``vec0`` table;
* ``2``: every vector once (see :mod:`~aerodrome.knowledge.index.sqlite_vectors`): in ``vec0``
  for collections sqlite-vec wrote last, as a BLOB for those the numpy engine wrote.

:func:`ensure_layout` runs when a :class:`~aerodrome.knowledge.index.sqlite.SQLiteIndex` opens, in
one write transaction: it creates the current layout, or upgrades a version 1 file in place, or
refuses a newer layout. The upgrade re-embeds nothing: opened with sqlite-vec, it clears the BLOBs
of the collections whose vec0 table is current (the freed pages are reused by later writes;
``VACUUM`` returns them to the file system); opened without it, it keeps the BLOBs and marks the
vec0 tables stale, so the numpy engine keeps working and sqlite-vec rebuilds vec0 on first use.
"""

from __future__ import annotations

from typing import Any

from aerodrome.knowledge.index.base import IndexUnavailable

SCHEMA_VERSION = "2"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS knowledge_index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS knowledge_collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, dims INTEGER NOT NULL,
    embedding_model TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0,
    vec_generation INTEGER NOT NULL DEFAULT -1)""",
    """CREATE TABLE IF NOT EXISTS knowledge_chunks (
    id INTEGER PRIMARY KEY, collection_id INTEGER NOT NULL, chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL, title TEXT,
    uri TEXT NOT NULL DEFAULT '', heading TEXT, page INTEGER, metadata TEXT NOT NULL DEFAULT '{}',
    embedding BLOB, scope TEXT GENERATED ALWAYS AS ('c' || collection_id) VIRTUAL,
    UNIQUE (collection_id, chunk_id))""",
    """CREATE INDEX IF NOT EXISTS knowledge_chunks_document ON knowledge_chunks (collection_id, document_id)""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5(
    scope, title, heading, text, content='knowledge_chunks', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2')""",
    """
CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ai AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts(rowid, scope, title, heading, text)
    VALUES (new.id, new.scope, new.title, new.heading, new.text);
END""",
    """
CREATE TRIGGER IF NOT EXISTS knowledge_chunks_ad AFTER DELETE ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts(knowledge_fts, rowid, scope, title, heading, text)
    VALUES ('delete', old.id, old.scope, old.title, old.heading, old.text);
END""",
)


def layout_version(conn: Any) -> str | None:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'knowledge_index_meta'"
    ).fetchone()
    if row is None:
        return None
    row = conn.execute("SELECT value FROM knowledge_index_meta WHERE key = 'schema_version'").fetchone()
    return str(row[0]) if row else None


def ensure_layout(conn: Any, *, vectors_in_blobs: bool) -> None:
    """Create, upgrade or accept the layout (``conn`` in autocommit mode; runs its own transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = layout_version(conn)
        if version not in (None, "1", SCHEMA_VERSION):
            raise IndexUnavailable(
                f"the SQLite index has layout version {version}, newer than this Aerodrome's"
                f" ({SCHEMA_VERSION}): upgrade Aerodrome"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        if version == "1":
            _upgrade_from_1(conn, vectors_in_blobs=vectors_in_blobs)
        conn.execute(
            "INSERT INTO knowledge_index_meta(key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (SCHEMA_VERSION,),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade_from_1(conn: Any, *, vectors_in_blobs: bool) -> None:
    if vectors_in_blobs:  # numpy engine: the BLOBs stay the store, vec0 is rebuilt when sqlite-vec next loads
        conn.execute("UPDATE knowledge_collections SET vec_generation = -1")
    else:  # sqlite-vec: collections whose vec0 is current keep their vectors there only
        conn.execute(
            "UPDATE knowledge_chunks SET embedding = NULL WHERE embedding IS NOT NULL AND collection_id IN"
            " (SELECT id FROM knowledge_collections WHERE vec_generation = generation)"
        )
