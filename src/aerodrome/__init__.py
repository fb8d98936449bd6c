"""Aerodrome: take generative-AI use cases from pilot to production.

The public Python API is small and pinned by a test: build the app from typed
settings and a config, or load a config file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AerodromeError", "PlatformConfig", "Settings", "__version__", "create_app", "load_config"]

if TYPE_CHECKING:
    from aerodrome.app import create_app
    from aerodrome.config import PlatformConfig, load_config
    from aerodrome.errors import AerodromeError
    from aerodrome.settings import Settings

_LAZY = {
    "create_app": "aerodrome.app",
    "PlatformConfig": "aerodrome.config",
    "load_config": "aerodrome.config",
    "AerodromeError": "aerodrome.errors",
    "Settings": "aerodrome.settings",
}


def __getattr__(name: str) -> Any:
    """Import lazily so that `import aerodrome` stays cheap for the CLI."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
