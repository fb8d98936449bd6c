"""Fixtures of the index tests (defined in backends.py so other test modules can import them)."""

from tests.knowledge.index.backends import backend, pg_server_uri  # noqa: F401
