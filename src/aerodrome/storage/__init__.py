"""Storage: engine, tables and migrations for SQLite (embedded) and PostgreSQL (scaled)."""
