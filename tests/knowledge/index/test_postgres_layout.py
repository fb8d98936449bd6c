"""The PostgreSQL index's layout version: a version 1 index (tsvector ranking) is upgraded in place."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from aerodrome.knowledge.index.base import IndexUnavailable
from aerodrome.knowledge.index.postgres import SCHEMA_VERSION, PostgresIndex
from tests.knowledge.index.backends import pg_server_uri  # noqa: F401
from tests.knowledge.index.corpus import DIMS, DOCS, MODEL, chunk, load

# The version 1 layout as Aerodrome created it (before BM25 postings), and one chunk row as it wrote them.
V1_SCHEMA = """
CREATE TABLE knowledge_index_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE knowledge_collections (
    id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, dims integer NOT NULL, embedding_model text NOT NULL);
CREATE TABLE knowledge_chunks (
    id bigserial PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES knowledge_collections (id) ON DELETE CASCADE,
    chunk_id text NOT NULL, document_id text NOT NULL, ordinal integer NOT NULL, text text NOT NULL,
    title text, uri text NOT NULL DEFAULT '', heading text, page integer, metadata jsonb NOT NULL DEFAULT '{}',
    embedding vector, tsv tsvector NOT NULL, UNIQUE (collection_id, chunk_id));
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (collection_id, document_id);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
INSERT INTO knowledge_index_meta (key, value) VALUES ('schema_version', '1');
"""
V1_CHUNK = """
INSERT INTO knowledge_chunks (collection_id, chunk_id, document_id, ordinal, text, title, uri, heading, page,
                              metadata, embedding, tsv)
VALUES (%s, %s, %s, 0, %s, %s, %s, %s, 1, %s::jsonb, %s::vector,
        setweight(to_tsvector('english', %s), 'A') || to_tsvector('english', %s))
"""
_schemas = itertools.count()


@pytest.fixture
def schema_url(pg_server_uri: str) -> Iterator[str]:  # noqa: F811
    schema = f"layout_{next(_schemas)}"
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{pg_server_uri}&options={quote(f'-csearch_path={schema},public')}"
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def make_v1_index(url: str) -> None:
    import json

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(V1_SCHEMA)
        for name in ("kb", "other"):
            row = conn.execute(
                "INSERT INTO knowledge_collections (name, dims, embedding_model) VALUES (%s, %s, %s) RETURNING id",
                (name, DIMS, MODEL),
            ).fetchone()
            assert row is not None
            for document_id, (text, vector, metadata) in DOCS.items():
                c = chunk(name, document_id, text, vector, 0, metadata)
                conn.execute(V1_CHUNK, (row[0], c.chunk_id, document_id, text, c.title, c.uri, c.heading,
                                        json.dumps(metadata), str(vector), c.title, text))  # fmt: skip


def test_a_version_1_index_is_upgraded_in_place(schema_url: str) -> None:
    make_v1_index(schema_url)
    index = PostgresIndex(schema_url)
    try:
        # The upgraded index ranks exactly like one written by this version.
        index.ensure_collection("fresh", dims=DIMS, embedding_model=MODEL)
        load(index, "fresh")
        for query in ("how long is parental leave?", "replacing laptops", "conge", "refunds purchase"):
            upgraded = [(h.document_id, h.score) for h in index.lexical(["kb"], query, 10)]
            fresh = [(h.document_id, h.score) for h in index.lexical(["fresh"], query, 10)]
            assert [d for d, _ in upgraded] == [d for d, _ in fresh] and upgraded
            assert [s for _, s in upgraded] == pytest.approx([s for _, s in fresh], rel=1e-9)
        assert index.lexical(["kb"], "laptop", 1, {"metadata.dept": "it"})[0].document_id == "laptop.md"
        # Vectors survive (nothing to re-embed) and writes keep working.
        assert index.dense(["kb"], [0.0, 1.0, 0.0, 0.0], 1)[0].document_id == "laptop.md"
        index.delete_document("kb", "laptop.md")
        assert all(h.document_id != "laptop.md" for h in index.lexical(["kb"], "laptop", 10))
        assert index.count("kb") == index.count("other") - 1 == len(DOCS) - 1
        with psycopg.connect(schema_url) as conn:
            assert conn.execute("SELECT value FROM knowledge_index_meta").fetchall() == [(SCHEMA_VERSION,)]
            columns = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'knowledge_chunks'"
                " AND table_schema = current_schema()")}  # fmt: skip
            assert "tsv" not in columns and {"length", "terms"} <= columns
    finally:
        index.close()
    PostgresIndex(schema_url).close()  # opening an upgraded index again changes nothing


def test_a_newer_layout_is_refused(schema_url: str) -> None:
    PostgresIndex(schema_url).close()
    with psycopg.connect(schema_url, autocommit=True) as conn:
        conn.execute("UPDATE knowledge_index_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(IndexUnavailable, match="layout version 99"):
        PostgresIndex(schema_url)
