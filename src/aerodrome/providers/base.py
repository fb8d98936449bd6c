"""The provider contract every provider kind implements (built-in or third-party).

A provider turns an OpenAI-shaped request body into a call on its upstream and
returns OpenAI-shaped data:

* ``chat(deployment, body)`` → a ``chat.completion`` dict (with ``usage`` when known);
* ``chat_stream(deployment, body)`` → an async iterator of ``chat.completion.chunk``
  dicts; the last chunk carries ``usage`` when the upstream reports it;
* ``embeddings(deployment, body)`` → an OpenAI ``list`` of embeddings with ``usage``.

``body`` is the client's request with ``model`` already replaced by the
deployment's upstream model id. Failures raise ``UpstreamError`` (retryable or not),
``UpstreamTimeout`` or ``UpstreamRejected`` from ``aerodrome.errors``; a provider
never raises anything else on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp

from aerodrome.config import DeploymentConfig, ProviderConfig


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a provider factory receives: its config, a shared HTTP session, its secret."""

    config: ProviderConfig
    http: aiohttp.ClientSession
    api_key: str | None


@runtime_checkable
class Provider(Protocol):
    kind: str

    async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]: ...

    def chat_stream(
        self, deployment: DeploymentConfig, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def embeddings(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class ProviderFactory(Protocol):
    def __call__(self, ctx: ProviderContext) -> Provider: ...
