"""Run the mock upstream in a background thread; pytest fixtures built on it.

Usage::

    with UpstreamServer(api_key="sk-test") as up:
        up.fault(status=500, times=2)
        ...  # point a provider at up.url (OpenAI) or up.anthropic_url (Anthropic)
        assert up.requests()[0]["body"]["model"] == "gpt-mock"
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web

from tests.upstream.server import DEFAULT_MODELS, Fault, UpstreamState, create_app

UPSTREAM_KEY = "sk-upstream-test"


class UpstreamServer:
    """The mock upstream on 127.0.0.1 and a free port, with its own event loop and thread."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        models: Iterable[str] = DEFAULT_MODELS,
        shutdown_timeout: float = 0.2,
    ) -> None:
        self.api_key = api_key
        self.state = UpstreamState(api_key)
        self.port = 0
        self._app = create_app(self.state, models)
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="upstream-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream server did not start")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("upstream server failed to start") from self._error

    # -- addresses -------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """OpenAI-style base URL (``.../v1``), as the openai SDK's ``base_url`` expects."""
        return f"{self.root}/v1"

    @property
    def anthropic_url(self) -> str:
        """Anthropic base URL for ``ProviderConfig.base_url`` (the provider posts ``{base}/messages``)."""
        return f"{self.root}/v1"

    # -- control -------------------------------------------------------------------------
    def fault(self, **kw: Any) -> Fault:
        """Queue a fault for the next matching request(s); see ``tests.upstream.server.Fault``."""
        return self.state.add_fault(**kw)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Requests received so far (method, path, headers, body), optionally only for ``path``."""
        seen = self.state.requests()
        return [r for r in seen if path is None or r["path"] == path]

    def stats(self) -> dict[str, int]:
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()

    def wait_for(self, predicate: Callable[[dict[str, int]], bool], timeout: float = 3.0) -> bool:
        """Poll ``predicate(stats())`` until true or ``timeout``; returns the last result."""
        deadline = time.monotonic() + timeout
        while not predicate(self.stats()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # -- lifecycle -----------------------------------------------------------------------
    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> UpstreamServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    """A fresh mock upstream that accepts any API key."""
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def upstream_keyed() -> Iterator[UpstreamServer]:
    """A fresh mock upstream that requires ``UPSTREAM_KEY`` (Bearer or x-api-key)."""
    with UpstreamServer(api_key=UPSTREAM_KEY) as server:
        yield server
