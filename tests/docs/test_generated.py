"""The generated references in docs/ are current, and the public API is pinned."""

from __future__ import annotations

from pathlib import Path

import aerodrome
from aerodrome.cli.reference import cli_markdown, config_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"
FIX = "run `python -m aerodrome.cli.reference docs` and commit the result"


def test_cli_reference_is_current() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == cli_markdown(), FIX


def test_config_reference_is_current() -> None:
    assert (DOCS / "config-reference.md").read_text(encoding="utf-8") == config_markdown(), FIX


def test_cli_reference_names_every_command() -> None:
    text = cli_markdown()
    for cmd in (
        "aerodrome init",
        "aerodrome serve",
        "aerodrome demo",
        "aerodrome db upgrade",
        "aerodrome db current",
        "aerodrome keys create",
        "aerodrome keys list",
        "aerodrome keys revoke",
        "aerodrome models list",
    ):
        assert f"## `{cmd}`" in text


def test_public_api_is_pinned() -> None:
    assert sorted(aerodrome.__all__) == sorted(
        ["__version__", "AerodromeError", "PlatformConfig", "Settings", "create_app", "load_config"]
    )
    for name in aerodrome.__all__:
        assert hasattr(aerodrome, name)
