"""Evidence engine: metrics with intervals, success criteria and their verdicts."""
