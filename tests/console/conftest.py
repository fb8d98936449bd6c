"""Fixtures of the console tests: the site and a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.site import CHROMIUM, CHROMIUM_ARGS, chromium_missing, console_site
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer


@pytest.fixture
def site(upstream: UpstreamServer, tmp_path: Path) -> Iterator[Gateway]:
    with console_site(upstream.url, tmp_path) as gw:
        yield gw


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One browser for the console's tests, stopped when they are done: Playwright's sync API keeps
    an event loop running in the main thread while it lives, which breaks later ``asyncio.run``."""
    if chromium_missing():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
