"""Aerodrome: take generative-AI use cases from pilot to production."""

__version__ = "0.1.0"
__all__ = ["__version__"]
