"""A real OpenID Connect provider for the tests: the `oidc-provider` npm package run by the machine's
Node.js (tests/console/oidc_provider.mjs); installed from package-lock.json on first use."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).parent
CLIENT_ID = "aerodrome-console"


def node_missing() -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y nodejs npm; CI installs it)"
    return None


def install() -> None:
    """npm ci in tests/console when oidc-provider is not there yet (a fresh machine)."""
    if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=600
    )


@contextmanager
def provider(port: int, redirect_uri: str, client_secret: str) -> Iterator[str]:
    """Run the provider on 127.0.0.1:port; yields its issuer URL."""
    install()
    proc = subprocess.Popen(
        ["node", str(HERE / "oidc_provider.mjs"), str(port), redirect_uri, client_secret],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(issuer + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"oidc-provider did not start:\n{out}")
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
