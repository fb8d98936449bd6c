"""Routing: alias → deployment, retries with backoff, fallbacks, circuit breaker, balancing."""
