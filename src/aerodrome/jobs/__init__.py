"""Background work (ingestion, later evaluations and rollups): in process here, a queue in the scaled mode."""
