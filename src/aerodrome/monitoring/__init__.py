"""Run records, Prometheus metrics and structured logs."""
