"""Guardrails: PII, prompt injection, output validation, classification policy."""
