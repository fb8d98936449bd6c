"""Index backends: SQLite (FTS5 + sqlite-vec) and PostgreSQL (full-text + pgvector)."""
