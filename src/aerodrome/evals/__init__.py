"""Evaluations: eval suites, red-team runs, the model-upgrade gate."""
