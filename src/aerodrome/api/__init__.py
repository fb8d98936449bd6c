"""Management API under /api: every endpoint asks the permission table."""
