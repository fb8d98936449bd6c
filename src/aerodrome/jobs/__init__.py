"""Background work (ingestion, rollups, retention, evaluations): a queue on the jobs table, run by a worker in the server (embedded) or by ``aerodrome worker`` processes (scaled)."""
