"""Rate limits (RPM, TPM) and USD budgets with reservation: in process (backend.py) or on Redis (redis_backend.py)."""
