"""Secret references: ``env:NAME`` or ``file:/path``. Values are never logged or returned."""

from __future__ import annotations

from pathlib import Path

from aerodrome.errors import ConfigError
from aerodrome.settings import read_secret_env


def resolve_secret(ref: str | None, *, base_dir: Path | None = None) -> str | None:
    if ref is None:
        return None
    kind, _, name = ref.partition(":")
    if kind == "env":
        return read_secret_env(name)
    if kind == "file":
        path = Path(name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"secret file {path} cannot be read: {exc.strerror}") from None
    raise ConfigError(f"unsupported secret reference kind {kind!r} (use env: or file:)")


def describe_ref(ref: str | None, *, base_dir: Path | None = None) -> dict[str, object]:
    """What the API may say about a secret: where it comes from, not what it is.

    Never raises: an unreadable reference is reported, so the catalog stays listable.
    """
    if ref is None:
        return {"api_key_ref": None, "api_key_set": False}
    try:
        return {"api_key_ref": ref, "api_key_set": resolve_secret(ref, base_dir=base_dir) is not None}
    except ConfigError as exc:
        return {"api_key_ref": ref, "api_key_set": False, "api_key_problem": exc.message}
